"""What several test files share: the app's test fixtures (app), hostile inputs (hostile, uploads), and the
script each rank runs under torchrun (ddp_worker)."""
