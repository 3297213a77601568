"""Steno's trainer: LoRA adapters that teach a model a user's own words.

The public API is in `trainer.api` (data in, training, adapters on disk); the CLI's
`steno train` and `steno adapters` and the app's trainer tab are thin layers over it.
"""
