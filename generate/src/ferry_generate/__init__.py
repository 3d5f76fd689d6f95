"""Dev only: writes (and `--check`s) every generated file of the repository from its one source."""
