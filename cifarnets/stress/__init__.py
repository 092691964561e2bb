"""Breaking the networks: CIFAR-10-C corruptions, adversarial examples, and the measurements behind the
Stress test page (corruptions, attacks, measure: the `stress` command, stressfile: its file, stress_sentences: its
text)."""
