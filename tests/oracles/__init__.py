"""Reference implementations the product code is held to: slower, written for clarity, and
written independently of the code they check, so the two cannot share a mistake."""
