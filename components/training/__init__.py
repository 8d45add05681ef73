"""The old home of the Trainer's module file: see `components/trainer_module.py`."""
