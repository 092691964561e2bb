"""cifarnets: the four CIFAR-10 networks of a student report, trained, measured and shown."""

__version__ = "0.1.0"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
