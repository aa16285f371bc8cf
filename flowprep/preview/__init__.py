"""``flowprep preview``: a browsable static page of a built dataset (RGB next to its decoded flow)."""
