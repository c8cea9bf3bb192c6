"""The error every data-set loader raises for missing, damaged or unreadable data."""


class DatasetError(ValueError):
    """A data file is missing, damaged, or not what the loader expects.

    The message names the file, says what was expected and what was found, and how to
    fix it (which directory, which environment variable, which files). It subclasses
    `ValueError`, so code that already catches bad values keeps working.

    Example:

    >>> try:
    ...     load_fashion_mnist(data_dir="/nowhere")
    ... except DatasetError as error:
    ...     print(error)  # doctest: +SKIP
    """
