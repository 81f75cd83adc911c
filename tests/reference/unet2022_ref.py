"""Independent PyTorch reference of the whole UNet-2022 network.

Written from the description of the released network (docs/network.md, which records what the
authors' released code does), NOT from our C code. It is the oracle for
tests/reference/test_model_vs_torch.py and the PyTorch side of scripts/bench_torch_ref.py.

The module tree is laid out so that state_dict() yields exactly the released network's keys, shapes
and key order (the key lists in tests/reference/data/), including the persistent int64
`relative_position_index` buffers.

Layout conventions inside this file: the stem, merging, expanding and heads work on NCHW tensors
(with a channels-first LayerNorm); the PI blocks' attention part works channels-last, as the
released code does.

Public API:
  cfg_from_yaml(path) / cfg_from_dict(d)  -> normalised config dict
  UNet2022Ref(cfg, stochastic_depth=True)  -> nn.Module; forward(x NCHW) -> list of logits
                                              [full, 1/2, 1/4] with deep supervision, else [full]
  loss_fn(outputs, labels)                 -> scalar loss (1.2 SoftDice + 0.8 CE, DS-weighted)
  ds_targets(labels, n)                    -> the label maps used for each output
  draw_params(model, seed)                 -> draws every parameter so that every path matters
  train_steps(model, image, labels, steps, lr, capture=None) -> list of losses
  RECIPES                                  -> the five paper configurations
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "tiny": (96, [3, 6, 12, 24]),
    "base": (128, [4, 8, 16, 32]),
    "large": (192, [6, 12, 24, 48]),
}

# The five recipes (docs/network.md, "Presets and the five recipes"; network part only).
RECIPES = {
    "synapse_224": dict(preset="base", patch_size=4, windows=[7, 7, 14, 7], in_channels=1, classes=14,
                        deep_supervision=True, crop=[224, 224]),
    "synapse_320": dict(preset="tiny", patch_size=4, windows=[10, 10, 20, 10], in_channels=1, classes=14,
                        deep_supervision=True, crop=[320, 320]),
    "acdc_224": dict(preset="large", patch_size=4, windows=[7, 7, 14, 7], in_channels=1, classes=4,
                     deep_supervision=False, crop=[224, 224]),
    "em_512": dict(preset="tiny", patch_size=8, windows=[16, 16, 16, 8], in_channels=1, classes=2,
                   deep_supervision=True, crop=[512, 512]),
    "isic_512": dict(preset="tiny", patch_size=8, windows=[8, 8, 16, 8], in_channels=3, classes=2,
                     deep_supervision=True, crop=[512, 512]),
}
RECIPE_PARAMS = {"synapse_224": 73000882, "synapse_320": 41383440, "acdc_224": 163080024,
                 "em_512": 42065940, "isic_512": 42026628}

LN_EPS = 1e-5       # every LayerNorm except the ConvNeXt one
LN_EPS_CNX = 1e-6   # the ConvNeXt part's LayerNorm only (spec "Traps")
MASK_VALUE = -100.0


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
def cfg_from_dict(d):
    """Normalises a config dict (the `network:` section of our YAML, or a whole YAML dict)."""
    if "network" in d:
        name = d.get("name")
        d = dict(d["network"])
        d.setdefault("name", name)
    d = dict(d)
    preset = str(d.get("preset", "tiny")).lower()
    if preset == "custom":
        embed_dim = int(d["embed_dim"])
        heads = [int(h) for h in d["heads"]]
    else:
        embed_dim, heads = PRESETS[preset]
    cfg = dict(
        name=d.get("name"),
        preset=preset,
        embed_dim=embed_dim,
        heads=list(heads),
        patch_size=int(d.get("patch_size", 4)),
        windows=[int(w) for w in d["windows"]],
        in_channels=int(d.get("in_channels", 1)),
        classes=int(d["classes"]),
        deep_supervision=bool(d.get("deep_supervision", True)),
        crop=[int(c) for c in d["crop"]],
        drop_path_rate=float(d.get("drop_path_rate", 0.2)),
    )
    if cfg["patch_size"] not in (4, 8):
        raise ValueError("patch_size must be 4 or 8")
    if len(cfg["windows"]) != 4 or len(cfg["heads"]) != 4:
        raise ValueError("windows and heads need 4 entries")
    return cfg


def cfg_from_yaml(path):
    import yaml
    with open(path) as f:
        return cfg_from_dict(yaml.safe_load(f))


def stage_windows(cfg):
    """Per encoder stage (window, shift for odd blocks), clamped from the crop at construction."""
    out = []
    for i, w in enumerate(cfg["windows"]):
        f = cfg["patch_size"] * (2 ** i)
        res = min(cfg["crop"][0] // f, cfg["crop"][1] // f)
        if res <= w:
            out.append((res, 0))
        else:
            out.append((w, w // 2))
    return out


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------
def gelu(x):
    """Exact (erf) GELU, written out. Not F.gelu: in this torch build (Debian 1.13, CPU) the fp32
    GeluBackward kernel returns garbage when grad_output is channels-last strided and the input is
    contiguous (rel. err ~1e19 vs fp64), which the permutes around our LayerNorms produce."""
    return x * 0.5 * (1.0 + torch.erf(x * 0.7071067811865476))


def ln_cf(ln, x):
    """nn.LayerNorm `ln` over the channel dim of an NCHW tensor."""
    return ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def drop_path(x, p, training):
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class ConvBlock(nn.Module):
    """Stem / head block: conv1 -> GELU -> norm1 -> conv2 [-> GELU -> norm2].

    conv1 is a Conv3x3 stride 2 in the stem, a ConvTranspose2x2 stride 2 in the P=8 heads.
    `last` drops the final GELU and norm2 (the stem's last block)."""

    def __init__(self, cin, cout, transposed=False, last=False):
        super().__init__()
        if transposed:
            self.conv1 = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        else:
            self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1)
        self.norm1 = nn.LayerNorm(cout, eps=LN_EPS)
        self.last = last
        if not last:
            self.norm2 = nn.LayerNorm(cout, eps=LN_EPS)

    def forward(self, x):
        x = ln_cf(self.norm1, gelu(self.conv1(x)))
        x = self.conv2(x)
        if not self.last:
            x = ln_cf(self.norm2, gelu(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, cin, C, P):
        super().__init__()
        chans = [cin, C // 2, C] if P == 4 else [cin, C // 4, C // 2, C]
        n = len(chans) - 1
        self.project_block = nn.ModuleList(
            [ConvBlock(chans[i], chans[i + 1], last=(i == n - 1)) for i in range(n)])
        self.norm = nn.LayerNorm(C, eps=LN_EPS)

    def forward(self, x):
        for b in self.project_block:
            x = b(x)
        return ln_cf(self.norm, x)


def relative_position_index(w):
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij"))  # 2,w,w
    coords = coords.flatten(1)                                                            # 2,N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()         # N,N,2
    rel[:, :, 0] += w - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1).to(torch.int64)                                                    # N,N


class WindowAttention(nn.Module):
    def __init__(self, dim, w, heads):
        super().__init__()
        self.dim, self.w, self.heads = dim, w, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(w), persistent=True)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, dw, mask):
        """x, dw: (B*nW, N, d) windows of the normed/padded/rolled map and of its dwconv;
        mask: (nW, N, N) or None."""
        Bw, N, d = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(Bw, N, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)                                     # Bw,h,N,N
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(N, N, h).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(Bw // nW, nW, h, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(Bw, h, N, N)
        attn = attn.softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(Bw, N, d)
        o = o + dw            # the attention part's dwconv joins the merged heads before proj
        return self.proj(o)


def window_partition(x, w):
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)


def window_reverse(win, w, H, W):
    B = win.shape[0] // ((H // w) * (W // w))
    x = win.view(B, H // w, W // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, -1)


def shift_mask(Hp, Wp, w, s, device):
    """Swin mask on the padded map: -100 between tokens of different regions."""
    img = torch.zeros(1, Hp, Wp, 1, device=device)
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    mw = window_partition(img, w).squeeze(-1)                 # nW, N
    m = mw.unsqueeze(1) - mw.unsqueeze(2)                      # nW, N, N
    return m.masked_fill(m != 0, MASK_VALUE).masked_fill(m == 0, 0.0)


class AttnPart(nn.Module):
    """`blocks_tr`: norm1 -> pad -> roll -> (window attention || dwconv) -> proj -> unroll -> crop."""

    def __init__(self, dim, w, s, heads):
        super().__init__()
        self.w, self.s = w, s
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = WindowAttention(dim, w, heads)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)

    def forward(self, x):
        """x: (B, H, W, d) channels-last; returns the residual branch (B, H, W, d)."""
        B, H, W, d = x.shape
        w, s = self.w, self.s
        u = self.norm1(x)
        ph, pw = (w - H % w) % w, (w - W % w) % w
        u = F.pad(u, (0, 0, 0, pw, 0, ph))                     # zero pad after the norm
        Hp, Wp = H + ph, W + pw
        if s > 0:
            u = torch.roll(u, shifts=(-s, -s), dims=(1, 2))
            mask = shift_mask(Hp, Wp, w, s, x.device).to(x.dtype)
        else:
            mask = None
        dw = self.dwconv(u.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)   # on the normed+padded+rolled map
        o = self.attn(window_partition(u, w), window_partition(dw, w), mask)
        o = window_reverse(o, w, Hp, Wp)
        if s > 0:
            o = torch.roll(o, shifts=(s, s), dims=(1, 2))
        return o[:, :H, :W, :]


class PIBlock(nn.Module):
    def __init__(self, dim, w, s, heads, dp):
        super().__init__()
        self.dp = dp
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS_CNX)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.blocks_tr = AttnPart(dim, w, s, heads)
        self.use_drop_path = True

    def forward(self, x):
        """x: (B, d, H, W) -> (B, d, H, W)."""
        training = self.training and self.use_drop_path
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(gelu(self.pwconv1(self.norm(y))))
        y = self.gamma * y
        x = x.permute(0, 2, 3, 1) + drop_path(y, self.dp, training)       # channels-last
        x = x + drop_path(self.blocks_tr(x), self.dp, training)
        return x.permute(0, 3, 1, 2)


def make_blocks(dim, w, s, heads, dps):
    # blocks 0 and 2 unshifted, block 1 shifted (s is already 0 for clamped stages)
    return nn.ModuleList([PIBlock(dim, w, s if j % 2 == 1 else 0, heads, dps[j]) for j in range(3)])


class Downsample(nn.Module):
    """GELU -> LayerNorm(d) -> Conv3x3 stride 2 (d -> 2d)."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Conv2d(dim, 2 * dim, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x):
        return self.reduction(ln_cf(self.norm, gelu(x)))


class EncoderLayer(nn.Module):
    def __init__(self, dim, w, s, heads, dps, downsample):
        super().__init__()
        self.blocks = make_blocks(dim, w, s, heads, dps)
        if downsample:
            self.downsample = Downsample(dim)


class Upsample(nn.Module):
    """LayerNorm(2d) -> ConvTranspose2x2 stride 2 (2d -> d)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(2 * dim, eps=LN_EPS)
        self.up = nn.ConvTranspose2d(2 * dim, dim, kernel_size=2, stride=2)

    def forward(self, x):
        return self.up(ln_cf(self.norm, x))


class DecoderLayer(nn.Module):
    def __init__(self, dim, w, s, heads, dps):
        super().__init__()
        self.blocks = make_blocks(dim, w, s, heads, dps)
        self.Upsample = Upsample(dim)


class Encoder(nn.Module):
    def __init__(self, cfg, win):
        super().__init__()
        C, heads, P = cfg["embed_dim"], cfg["heads"], cfg["patch_size"]
        dpr = torch.linspace(0, cfg["drop_path_rate"], 12).tolist()
        self.patch_embed = PatchEmbed(cfg["in_channels"], C, P)
        self.layers = nn.ModuleList([
            EncoderLayer(C * 2 ** i, win[i][0], win[i][1], heads[i], dpr[3 * i:3 * i + 3], downsample=(i < 3))
            for i in range(4)])
        for i in range(4):
            self.add_module(f"norm{i}", nn.LayerNorm(C * 2 ** i, eps=LN_EPS))

    def forward(self, x):
        """Returns the 4 normed skips (NCHW)."""
        x = self.patch_embed(x)
        skips = []
        for i, layer in enumerate(self.layers):
            for b in layer.blocks:
                x = b(x)
            skips.append(ln_cf(getattr(self, f"norm{i}"), x))
            if i < 3:
                x = layer.downsample(x)                          # from the un-normalised output
        return skips


class Decoder(nn.Module):
    def __init__(self, cfg, win):
        super().__init__()
        C, heads = cfg["embed_dim"], cfg["heads"]
        dpr = torch.linspace(0, cfg["drop_path_rate"], 9).tolist()
        # layers.0 = C (rates dpr[0:3]), layers.1 = 2C (dpr[3:6]), layers.2 = 4C (dpr[6:9], applied first)
        self.layers = nn.ModuleList([
            DecoderLayer(C * 2 ** i, win[i][0], win[i][1], heads[i], dpr[3 * i:3 * i + 3]) for i in range(3)])

    def forward(self, skips):
        """Returns decoder outputs [C, 2C, 4C] (fine to coarse)."""
        x = skips[3]
        outs = [None] * 3
        for i in (2, 1, 0):
            layer = self.layers[i]
            x = layer.Upsample(x) + skips[i]                    # skip ADDED after the upsample
            for b in layer.blocks:
                x = b(x)
            outs[i] = x
        return outs


class Head(nn.Module):
    def __init__(self, dim, classes, P):
        super().__init__()
        if P == 8:
            self.project_block = nn.ModuleList([ConvBlock(dim, dim // 2, transposed=True, last=False)])
            dim = dim // 2
        self.up_final = nn.ConvTranspose2d(dim, classes, kernel_size=4, stride=4)

    def forward(self, x):
        if hasattr(self, "project_block"):
            for b in self.project_block:
                x = b(x)
        return self.up_final(x)


class UNet2022Ref(nn.Module):
    def __init__(self, cfg, stochastic_depth=True):
        super().__init__()
        if "embed_dim" not in cfg:
            cfg = cfg_from_dict(cfg)
        self.cfg = cfg
        self.windows = stage_windows(cfg)
        self.model_down = Encoder(cfg, self.windows)
        self.decoder = Decoder(cfg, self.windows)
        C = cfg["embed_dim"]
        self.final = nn.ModuleList([Head(C * 2 ** i, cfg["classes"], cfg["patch_size"]) for i in range(3)])
        self.set_stochastic_depth(stochastic_depth)

    def set_stochastic_depth(self, on):
        for m in self.modules():
            if isinstance(m, PIBlock):
                m.use_drop_path = bool(on)

    def forward(self, x):
        dec = self.decoder(self.model_down(x))
        if self.cfg["deep_supervision"]:
            return [self.final[i](dec[i]) for i in range(3)]
        return [self.final[0](dec[0])]


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------
# loss (nnU-Net v1 DC_and_CE with batch dice, background excluded)
# ----------------------------------------------------------------------------------------------
DS_WEIGHTS = [4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0]


def ds_targets(labels, n):
    """labels (B, H, W) int -> targets for outputs [full, 1/2, 1/4][:n]: labels[:, f//2::f, f//2::f]."""
    out = []
    for i in range(n):
        f = 2 ** i
        out.append(labels if f == 1 else labels[:, f // 2::f, f // 2::f])
    return out


def dice_ce(logits, target, smooth=1e-5):
    """logits (B, K, H, W), target (B, H, W) int64 -> 1.2 * SoftDice + 0.8 * CE."""
    K = logits.shape[1]
    p = logits.softmax(1)
    y = F.one_hot(target.long(), K).permute(0, 3, 1, 2).to(p.dtype)
    axes = (0, 2, 3)                                  # batch dice: batch and space together
    tp = (p * y).sum(axes)
    fp = (p * (1 - y)).sum(axes)
    fn = ((1 - p) * y).sum(axes)
    dc = (2 * tp + smooth) / (2 * tp + fp + fn + smooth + 1e-8)
    dice = -dc[1:].mean()
    ce = F.cross_entropy(logits, target.long())
    return 1.2 * dice + 0.8 * ce


def loss_fn(outputs, labels):
    if len(outputs) == 1:
        return dice_ce(outputs[0], labels)
    tg = ds_targets(labels, len(outputs))
    w = DS_WEIGHTS[:len(outputs)]
    s = sum(w)
    return sum((w[i] / s) * dice_ce(outputs[i], tg[i]) for i in range(len(outputs)))


# ----------------------------------------------------------------------------------------------
# test-time parameter draw and training
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def draw_params(model, seed, head_scale=0.5, cnx_dw_scale=1.0):
    """Draws every parameter so that every path matters (spec testing note): weights
    N(0, 1/fan_in) (activations stay O(1)), LayerNorm weight U(0.5,1.5) / bias U(-0.2,0.2),
    gamma U(0.5,1.0), relative position bias table N(0,1), other biases U(-0.1,0.1).
    The final up_final weights are scaled by head_scale so the logits stay unsaturated.
    cnx_dw_scale scales the ConvNeXt part's dwconv (weight and bias): the LayerNorm after it is
    scale invariant except for its eps, so e.g. 0.01 (output variance ~1e-4) makes the eps 1e-6
    vs 1e-5 trap visible (~5% change) without changing anything else."""
    g = torch.Generator().manual_seed(seed)

    def U(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)

    def N(t, std):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std)

    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            U(m.weight, 0.5, 1.5)
            U(m.bias, -0.2, 0.2)
        elif isinstance(m, nn.ConvTranspose2d):
            # weight [in, out, k, k]; stride == kernel: each output pixel sees `in` inputs
            N(m.weight, 1.0 / math.sqrt(m.weight.shape[0]))
            if name.endswith("up_final"):
                m.weight.mul_(head_scale)
            U(m.bias, -0.1, 0.1)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            N(m.weight, 1.0 / math.sqrt(fan_in))
            U(m.bias, -0.1, 0.1)
            if name.endswith("dwconv") and not name.endswith("blocks_tr.dwconv"):
                m.weight.mul_(cnx_dw_scale)
                m.bias.mul_(cnx_dw_scale)
        elif isinstance(m, nn.Linear):
            N(m.weight, 1.0 / math.sqrt(m.weight.shape[1]))
            U(m.bias, -0.1, 0.1)
        elif isinstance(m, WindowAttention):
            N(m.relative_position_bias_table, 1.0)
        elif isinstance(m, PIBlock):
            U(m.gamma, 0.5, 1.0)
    return model


def train_steps(model, image, labels, steps, lr, capture=None):
    """`steps` Adam steps on one batch; returns the losses, each computed before its update.
    If `capture` is a dict, the first step's outputs, loss and (unclipped) gradients are stored
    in it under "outputs", "loss", "grads" (name -> tensor)."""
    model.train()
    model.set_stochastic_depth(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        outs = model(image)
        loss = loss_fn(outs, labels)
        loss.backward()
        if step == 0 and capture is not None:
            capture["outputs"] = [o.detach().clone() for o in outs]
            capture["loss"] = loss.detach().clone()
            capture["grads"] = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                                for n, p in model.named_parameters()}
        losses.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(params, 12.0)
        opt.step()
    return losses


def make_labels(B, H, W, K, seed):
    """Blobby random labels (coarse random classes upsampled, plus noise), every class present."""
    g = torch.Generator().manual_seed(seed)
    cell = 8
    coarse = torch.randint(0, K, (B, (H + cell - 1) // cell, (W + cell - 1) // cell), generator=g)
    lab = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :H, :W].clone()
    noise = torch.rand(B, H, W, generator=g) < 0.05
    lab[noise] = torch.randint(0, K, (int(noise.sum()),), generator=g)
    for k in range(K):                            # force every class to appear
        lab[0, k % H, (3 * k) % W] = k
    return lab
