"""sftcourse: the helper library of a course on supervised fine-tuning.

Import the module you need (``from sftcourse.gradcheck import numerical_grad``);
importing the package itself does nothing beyond defining the version.
"""

__version__ = "0.1.0"
