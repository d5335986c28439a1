# Dev-time generator of official_unipc_trajectories.txt (not part of the build).
# Usage: git -C <Wan2.1 repo> show HEAD:wan/utils/fm_solvers_unipc.py > /tmp/x/fm_solvers_unipc.py
#        python3 make_official_unipc.py official_unipc_trajectories.txt /tmp/x
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
sys.path.insert(0, sys.argv[2])
import torch, numpy as np
# Minimal stand-ins for the diffusers pieces fm_solvers_unipc.py imports.
import types, functools, enum
def _mod(name):
    m = types.ModuleType(name); sys.modules[name] = m; return m
d = _mod('diffusers'); cu = _mod('diffusers.configuration_utils'); s = _mod('diffusers.schedulers')
su = _mod('diffusers.schedulers.scheduling_utils'); u = _mod('diffusers.utils')
class _Cfg(dict):
    __getattr__ = dict.__getitem__
class ConfigMixin:
    def register_to_config(self, **kw):
        self.__dict__.setdefault('_cfg', _Cfg()); self._cfg.update(kw)
    @property
    def config(self): return self._cfg
def register_to_config(init):
    import inspect
    sig = inspect.signature(init)
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        b = sig.bind(self, *args, **kwargs); b.apply_defaults()
        a = dict(b.arguments); a.pop('self')
        self._cfg = _Cfg(a)
        init(self, *args, **kwargs)
    return wrapper
cu.ConfigMixin = ConfigMixin; cu.register_to_config = register_to_config
class SchedulerMixin: pass
class SchedulerOutput:
    def __init__(self, prev_sample): self.prev_sample = prev_sample
class KarrasDiffusionSchedulers(enum.Enum):
    A = 1
su.SchedulerMixin = SchedulerMixin; su.SchedulerOutput = SchedulerOutput
su.KarrasDiffusionSchedulers = KarrasDiffusionSchedulers
u.deprecate = lambda *a, **k: None; u.is_scipy_available = lambda: False
from fm_solvers_unipc import FlowUniPCMultistepScheduler
torch.set_num_threads(1)
out = open(sys.argv[1], 'w')
def emit(name, t):
    v = t.reshape(-1).tolist() if torch.is_tensor(t) else list(t)
    out.write(name + ' ' + str(len(v)) + ' ' + ' '.join('%.9g' % x for x in v) + '\n')
g = torch.Generator().manual_seed(1234)
shape = (1, 2, 3, 4)
x_T = torch.randn(shape, generator=g)
mu = (torch.randn(shape, generator=g) * 0.5).float()
emit('x_T', x_T); emit('mu', mu)
for N, shift in [(10, 5.0), (4, 5.0), (10, 3.0), (50, 5.0)]:
    sch = FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
    sch.set_timesteps(N, device='cpu', shift=shift)
    ks = np.float32(0.3 + 0.05 * np.arange(N) / N * 10).astype(np.float32)
    emit('case', [N, shift]); emit('timesteps', sch.timesteps); emit('k', ks)
    x = x_T.clone(); traj = []
    for i, t in enumerate(sch.timesteps):
        v = (x - mu) * float(ks[i]) - mu   # synthetic model: elementwise IEEE ops only
        x = sch.step(v, t, x, return_dict=False)[0]
        traj.append(x)
    emit('traj', torch.stack(traj))
out.close()
# noise parity
for seed in [0, 42]:
    n = torch.randn((16, 2, 3, 5), generator=torch.Generator().manual_seed(seed))
    print('seed', seed, ' '.join('%.9g' % v for v in n.reshape(-1)[:6].tolist()), 'sum %.9g' % n.double().sum().item())
