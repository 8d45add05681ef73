"""Model code: one small module per backbone on the shared base, plus data, export and the Trainer/Tuner functions."""
