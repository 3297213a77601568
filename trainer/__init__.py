"""Steno's trainer: LoRA adapters that teach a model a user's own words.

The public API is in `trainer.api` (data in, training, adapters on disk); the CLI's
`steno train` and `steno adapters` and the app's trainer tab are thin layers over it. The
records it passes (trainer.records) import no other trainer module, so the modules under
the API use them without importing it; recipes/ builds on this package, never the reverse.
"""
