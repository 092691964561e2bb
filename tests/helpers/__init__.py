"""What several test files share: the app's test fixtures (app), hostile inputs (hostile, uploads), pictures as PNG
bytes and the unfamiliar ones users try first (pictures), and the script each rank runs under torchrun (ddp_worker)."""
