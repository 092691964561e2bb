"""Whether an input is unlike anything a network was trained on: scores, their calibration, and the inputs
it is calibrated against. The softmax always sums to one over the ten classes, so every upload gets an
answer; this says when that answer is only a guess."""
