"""The user module of TFX's stock Trainer and Tuner (`module.run_fn`, `module.tuner_fn`)."""
