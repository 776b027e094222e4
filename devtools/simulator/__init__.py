"""A stand-in LiveKit and a traffic simulator: `warden simulate`, demo mode, and the tests' fake."""
