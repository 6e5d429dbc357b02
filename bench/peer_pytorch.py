#!/usr/bin/env python3
"""The peer of `ddpm train`: the same DDPM U-Net and training step in PyTorch, for a side-by-side throughput comparison.

Runs on Debian's python3-torch (PyTorch 1.13, CPU): `apt-get install python3-torch`, then
    /usr/bin/python3 bench/peer_pytorch.py --preset fashion-mnist --batch 128 --steps 40
The network is Ddpm's U-Net (src/Ddpm/Models/UNet.cs) written again with torch.nn: GroupNorm -> SiLU -> 3x3 conv residual
blocks with the timestep embedding added, single-head attention, stride-2 conv down, nearest x2 + conv up. The step is the
trainer's: L_simple on epsilon with uniform t on the linear schedule, backward, global-norm clipping at 1, Adam (2e-4), EMA
(0.9999). Random data of the data set's shape (throughput does not depend on the values). `--bf16` runs the forward under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own mixed precision (float32 master weights). Prints one JSON line.
Not part of the test suite.
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "fashion-mnist": dict(size=28, in_ch=1, ch=32, mult=(1, 2, 2), blocks=2, attn=(7,), groups=32),
    "ddpm-cifar10": dict(size=32, in_ch=3, ch=128, mult=(1, 2, 2, 2), blocks=2, attn=(16,), groups=32),
    "tiny": dict(size=8, in_ch=1, ch=16, mult=(1, 2), blocks=1, attn=(4,), groups=8),
}

def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float64) * -(math.log(10000.0) / max(1, half - 1)))
    args = t.double()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1).float()

class GroupNorm(nn.GroupNorm):
    """GroupNorm in the dtype of its input (PyTorch 1.13's CPU autocast leaves it float32 and then rejects bf16 inputs)."""
    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)

class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups):
        super().__init__()
        self.norm1, self.conv1 = GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb_proj = nn.Linear(emb, cout)
        self.norm2, self.conv2 = GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h

class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm, self.qkv, self.proj_out = GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
    def forward(self, x, emb):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).permute(1, 0, 3, 2)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), -1) @ v
        return x + self.proj_out(a.permute(0, 2, 1).reshape(b, c, h, w))

class Down(nn.Module):
    def __init__(self, c):
        super().__init__(); self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)
    def forward(self, x, emb): return self.conv(x)

class Up(nn.Module):
    def __init__(self, c):
        super().__init__(); self.conv = nn.Conv2d(c, c, 3, padding=1)
    def forward(self, x, emb): return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

class Seq(nn.ModuleList):
    def forward(self, x, emb):
        for layer in self: x = layer(x, emb)
        return x

class UNet(nn.Module):
    def __init__(self, size, in_ch, ch, mult, blocks, attn, groups):
        super().__init__()
        emb = 4 * ch
        self.ch = ch
        self.time_embed = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inputs = nn.ModuleList([Seq([_Plain(nn.Conv2d(in_ch, ch, 3, padding=1))])])
        skips, c, s = [ch], ch, size
        for level, m in enumerate(mult):
            for _ in range(blocks):
                layers = [ResBlock(c, ch * m, emb, groups)]; c = ch * m
                if s in attn: layers.append(Attention(c, groups))
                self.inputs.append(Seq(layers)); skips.append(c)
            if level != len(mult) - 1:
                self.inputs.append(Seq([Down(c)])); s //= 2; skips.append(c)
        self.middle = Seq([ResBlock(c, c, emb, groups), Attention(c, groups), ResBlock(c, c, emb, groups)])
        self.outputs = nn.ModuleList()
        for level in reversed(range(len(mult))):
            for i in range(blocks + 1):
                layers = [ResBlock(c + skips.pop(), ch * mult[level], emb, groups)]; c = ch * mult[level]
                if s in attn: layers.append(Attention(c, groups))
                if level != 0 and i == blocks: layers.append(Up(c)); s *= 2
                self.outputs.append(Seq(layers))
        self.out_norm, self.out_conv = GroupNorm(groups, c), nn.Conv2d(c, in_ch, 3, padding=1)
    def forward(self, x, t):
        emb = self.time_embed(timestep_embedding(t, self.ch))
        hs, h = [], x
        for block in self.inputs:
            h = block(h, emb); hs.append(h)
        h = self.middle(h, emb)
        for block in self.outputs: h = block(torch.cat([h, hs.pop()], 1), emb)
        return self.out_conv(F.silu(self.out_norm(h)))

class _Plain(nn.Module):
    def __init__(self, layer):
        super().__init__(); self.layer = layer
    def forward(self, x, emb): return self.layer(x)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="fashion-mnist", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (Debian's build starts with 1)")
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = PRESETS[a.preset]
    net = UNet(**cfg)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    sqrt_abar, sqrt_1m = abar.sqrt().float(), (1 - abar).sqrt().float()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    ema = [q.detach().clone() for q in net.parameters()]
    x0 = torch.rand(a.batch, cfg["in_ch"], cfg["size"], cfg["size"]) * 2 - 1
    def step():
        t = torch.randint(0, 1000, (a.batch,))
        noise = torch.randn_like(x0)
        xt = sqrt_abar[t][:, None, None, None] * x0 + sqrt_1m[t][:, None, None, None] * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            out = net(xt.bfloat16() if a.bf16 else xt, t)
        loss = ((out.float() - noise) ** 2).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, q in zip(ema, net.parameters()): e.mul_(0.9999).add_(q, alpha=1e-4)
        return loss.item()
    for _ in range(a.warmup): step()
    start = time.perf_counter()
    for _ in range(a.steps): step()
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "preset": a.preset, "batch": a.batch, "steps": a.steps,
                      "threads": torch.get_num_threads(), "bf16": a.bf16,
                      "parameters": sum(q.numel() for q in net.parameters()),
                      "train_images_per_s": a.steps * a.batch / seconds}))

if __name__ == "__main__":
    main()
