"""Study 2: robustness may be at odds with accuracy (Tsipras et al., ICLR 2019).

    python experiments/tradeoff.py --config configs/tradeoff.py:small --workdir runs/tradeoff/small
    python experiments/tradeoff.py --config configs/tradeoff.py:medium --config.data_dir=../shared/data

Profiles: smoke, small (the default: generated data and embedded 8x8 digits, no download),
medium (MNIST from the data dir), paper. Any config field can be set on the command line, e.g.
``--config.seed=1``, ``--config.theory.d=500``, ``--config.binary.eps_at=0.2``,
``--config.sweep.sizes='(100,1000)'``, ``--config.sweep.eps.linf='(0.0,0.1,0.3)'`` or the sweeps'
training recipe ``--config.sweep.train.num_steps=1000 --config.sweep.train.optimizer.lr=1e-3``.
The default workdir is ``runs/tradeoff/<profile>``; a rerun reuses its cached parts
(``<workdir>/parts``). What the study measures and writes: ``help(jadv.studies.tradeoff.run)``.
"""
from jadv.studies import tradeoff
from jadv.studies.common import study_app

if __name__ == "__main__":
    study_app(tradeoff, __file__)
