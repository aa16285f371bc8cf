"""``flowprep doctor``: every GPU claim of the project checked by one command on a GPU machine."""
