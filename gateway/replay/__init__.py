"""`emgate replay`: recorded data through the live pipeline's own minute and emission stages."""
