"""Shadow traffic for a rollout's analysis: which live predictions to mirror to the preview
(``sampling``) and whether the preview's answer agrees with the active colour's (``compare``).
Both are pure; the mirroring itself (asynchronous, bounded, off the caller's path) is the shell's."""
