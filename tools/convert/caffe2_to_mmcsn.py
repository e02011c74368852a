"""Convert a VMZ caffe2 CSN ``.pkl`` to an mmcsn/MMAction2 checkpoint.

The VMZ caffe2 model zoo (``facebookresearch/VMZ``, ``c2/``) publishes
pickles of ``{'blobs': {name: numpy array}}`` (often written by Python 2).
They are read with a restricted unpickler that only rebuilds numpy arrays,
dtypes and scalars: any other global in the pickle (a crafted file that
would run code) is refused before it is called.

Example (ip-CSN-152, IG-65M pretrained, fine-tuned on Kinetics-400)::

    python tools/convert/caffe2_to_mmcsn.py \\
        ipCSN_152_ft_kinetics_from_ig65m_f133090949.pkl \\
        checkpoints/csn/vmz_ipcsn_ig65m-ft-r152_kinetics400.pth \\
        --mode ip --depth 152

The VMZ zoo models were trained and tested with the stem max-pool
(``--use_pool1=1``), mmcsn's default ``with_pool1=True``.
"""
import argparse
import importlib
import importlib.util
import os
import pickle
import sys
from typing import List, Optional

from mmcsn.checkpoint import CheckpointError
from mmcsn.checkpoint.cli import csn_converter_parser, run_csn_converter

# The only globals a pickle of numpy arrays needs; everything else is
# refused, so unpickling cannot call arbitrary code.
ALLOWED_GLOBALS = frozenset([
    ('numpy', 'ndarray'),  # array type given to _reconstruct
    ('numpy', 'dtype'),  # dtype objects
    ('numpy.core.multiarray', '_reconstruct'),  # arrays, numpy 1 / py2
    ('numpy._core.multiarray', '_reconstruct'),  # arrays, numpy 2
    ('numpy.core.multiarray', 'scalar'),  # numpy scalars (lr, iter)
    ('numpy._core.multiarray', 'scalar'),  # numpy scalars, numpy 2
    ('numpy.core.numeric', '_frombuffer'),  # arrays, protocol 5
    ('numpy._core.numeric', '_frombuffer'),  # arrays, protocol 5, numpy 2
    ('_codecs', 'encode'),  # bytes in protocol-2 pickles made by py3
    ('collections', 'OrderedDict'),  # an ordered blob dict
])


class BlobUnpickler(pickle.Unpickler):
    """Unpickler that only resolves :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve an allowed global; refuse everything else."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f'global {module}.{name} is not allowed in a caffe2 blob '
                'pickle (only numpy arrays are): refusing to load')
        if module.startswith('numpy.core.') and importlib.util.find_spec(
                'numpy._core') is not None:
            # numpy 2 moved numpy.core to numpy._core (old name warns)
            module = 'numpy._core.' + module[len('numpy.core.'):]
        return getattr(importlib.import_module(module), name)


def load_caffe2_pickle(path: str) -> dict:
    """Read a caffe2 blob pickle safely.

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        dict: The unpickled dict (``{'blobs': {...}}`` or the blobs).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: Not a pickle, truncated, refused global, or not a
            dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path!r}')
    try:
        with open(path, 'rb') as f:
            # latin1: Python 2 str holds raw bytes (numpy array data)
            obj = BlobUnpickler(f, encoding='latin1').load()
    except pickle.UnpicklingError as err:
        raise CheckpointError(f'refused to load {path!r}: {err}') from err
    except (EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError) as err:
        raise CheckpointError(
            f'cannot read {path!r} as a caffe2 blob pickle (truncated or '
            f'not a pickle): {err}') from err
    if not isinstance(obj, dict):
        raise CheckpointError(
            f'{path!r} holds a {type(obj).__name__}, not a blob dict')
    return obj


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    return csn_converter_parser(
        __doc__.split('\n')[0], 'VMZ caffe2 blob pickle (.pkl)',
        depths=(26, 50, 101, 152)).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    return run_csn_converter(
        parse_args(argv), 'caffe2', read=load_caffe2_pickle)


if __name__ == '__main__':
    sys.exit(main())
