"""Model code: one small module per backbone on the shared base.

Beside them: input data, self-blending, export and the training recipe.
"""
