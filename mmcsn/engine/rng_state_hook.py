"""Save and restore the random number generators across ``--resume``.

mmengine's resume restores the model, optimizer, schedulers, message hub
and the epoch, but not the states of Python's ``random``, numpy's global
generator and torch's CPU/CUDA generators. Data augmentation
(``SampleFrames`` offsets, crops, flips), dropout and the DataLoader's
worker seeds draw from them, so a resumed run trains on different random
draws than an uninterrupted one. :class:`RNGStateHook` stores the four
states in every checkpoint and puts them back on resume.

Everything stored is a tensor, int, float, tuple or ``None``, so the
checkpoint still loads with ``torch.load(weights_only=True)`` and no
allow-list.
"""
import random
from typing import Dict, Optional

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from mmcsn.validate import ArgSpec, Bool

__all__ = ['RNGStateHook', 'get_rng_state', 'set_rng_state']

CKPT_KEY = 'rng_state'


def get_rng_state() -> Dict[str, object]:
    """Capture Python, numpy, torch CPU and (if present) CUDA RNG states.

    Returns:
        dict: Only tensors, ints, floats, tuples and None (weights-only
        safe).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=dict(
            name=name,
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, object]) -> None:
    """Restore what :func:`get_rng_state` captured.

    Args:
        state (dict): A captured state.
    """
    version, internal, gauss = state['python']
    # weights_only loading turns tuples into tuples but be lenient: the
    # inner state must be a tuple for random.setstate
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state(
        (np_state['name'], np_state['keys'].numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'],
         np_state['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` continue the random streams of the killed run.

    - ``before_save_checkpoint``: store the RNG states in the checkpoint
      under ``'rng_state'``.
    - ``after_load_checkpoint`` (only when the runner resumes, not for
      ``load_from``): keep the stored states; ``before_train`` puts them
      back. Restoring later than the load is needed because mmengine's
      ``Runner.resume`` re-seeds every generator after the hook runs when
      the config has no fixed seed.
    - ``before_val`` / ``after_val``: with ``isolate_val=True`` the
      validation loop (whose DataLoader draws a seed from torch's
      generator) leaves the training streams untouched, so a run resumed
      from an epoch checkpoint -- saved before validation -- sees the same
      draws as the uninterrupted run.

    Exact for ``EpochBasedTrainLoop`` with ``num_workers=0`` or
    non-persistent workers. Not restored (a warning says so) in
    distributed runs: only rank 0 writes the checkpoint, and the other
    ranks' states cannot be collected inside ``save_checkpoint``.

    Args:
        isolate_val (bool): Keep validation from consuming the training
            RNG streams. Defaults to True.
    """

    # before CheckpointHook (VERY_LOW) so the states are those at the end
    # of the training epoch
    priority = 'LOW'

    @ArgSpec('RNGStateHook', isolate_val=Bool())
    def __init__(self, isolate_val: bool = True) -> None:
        self.isolate_val = isolate_val
        self._pending: Optional[Dict[str, object]] = None
        self._val_state: Optional[Dict[str, object]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the RNG states (those before validation, if inside it)."""
        state = self._val_state or get_rng_state()
        checkpoint[CKPT_KEY] = dict(state=state, world_size=get_world_size())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the stored states when resuming."""
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning, testing): keep the new seed
        saved = checkpoint.get(CKPT_KEY)
        if saved is None:
            runner.logger.warning(
                'RNGStateHook: the checkpoint has no RNG states (saved '
                'without this hook); random draws after resume differ from '
                'an uninterrupted run')
        elif saved['world_size'] != 1 or get_world_size() != 1:
            runner.logger.warning(
                'RNGStateHook: RNG states are not restored in distributed '
                f'runs (saved with world_size={saved["world_size"]}, now '
                f'{get_world_size()})')
        else:
            self._pending = saved['state']

    def before_train(self, runner) -> None:
        """Restore the remembered states, after any re-seeding."""
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
            runner.logger.info('RNGStateHook: restored the Python, numpy '
                               'and torch RNG states of the checkpoint')

    def before_val(self, runner) -> None:
        """Snapshot the training streams before validation."""
        if self.isolate_val:
            self._val_state = get_rng_state()

    def after_val(self, runner) -> None:
        """Put the training streams back after validation."""
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None
