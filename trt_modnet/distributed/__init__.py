"""Scale-out on Ray: file units on one worker per GPU (or per CPU thread budget), one progress bar."""
