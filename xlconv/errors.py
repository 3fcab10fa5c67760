"""The one exception family that xlconv reports as a one-line error (exit status 2)."""


class XlconvError(Exception):
    """Base of all errors xlconv reports as one line (exit status 2)."""


class SpecError(XlconvError):
    """A worksheet spec is malformed; the message names the file and the field."""


class WorkbookError(XlconvError):
    """A file is not a workbook, or not one that xlconv made."""


class EngineError(XlconvError):
    """A spreadsheet engine is missing, failed, or did not recalculate."""


class VerifyError(XlconvError):
    """A workbook's recorded blocks cannot be checked."""


class ExerciseError(XlconvError):
    """An exercise cannot be made or graded: a bad roster, grid CSV, key folder or output path."""


class WeightsError(XlconvError):
    """Network weights cannot be loaded (a bad state_dict file, or pretrained weights that cannot be had)."""


class PretrainedUnavailable(WeightsError):
    """Pretrained weights are neither in the torch cache nor downloadable (offline)."""


class ImageError(XlconvError):
    """An input image cannot be read."""
