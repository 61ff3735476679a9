"""The last mile: from a verified bundle to a notebook version on Kaggle, and its submission.

* :mod:`.shapes` maps ninefit's targets to Kaggle's machine shapes (and refuses
  a GPU the image's torch cannot use);
* :mod:`.kernelmeta` writes and checks ``kernel-metadata.json``;
* :mod:`.checks` checks everything before anything is sent;
* :mod:`.kagglecli` runs the official Kaggle CLI and reads its output;
* :mod:`.flow` is ``ninefit push``: prepare, check, upload, push, submit.
"""

from packager.push.flow import SUBMISSION_FILE, PushOptions, PushResult, plan, push, submit_command
from packager.push.kagglecli import PINNED_CLI
from packager.push.kernelmeta import KERNEL_METADATA, KernelMetadata, check_kernel_metadata
from packager.push.shapes import Accelerator, accelerator

__all__ = [
    "KERNEL_METADATA",
    "PINNED_CLI",
    "SUBMISSION_FILE",
    "Accelerator",
    "KernelMetadata",
    "PushOptions",
    "PushResult",
    "accelerator",
    "check_kernel_metadata",
    "plan",
    "push",
    "submit_command",
]
