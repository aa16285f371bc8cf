"""Knowledge of datasets: HMDB51 names, tags and split files; how clips are split into train/val."""

HMDB5_CLASSES = ("walk", "run", "ride_bike", "fall_floor", "push")
