"""swin_ref.py — a direct PyTorch port of Swin Transformer's windowed attention pieces
(window_partition / window_reverse, relative_position_index, the shifted-window img_mask /
attn_mask construction, and WindowAttention.forward without the qkv / proj linears), used
as the oracle for the C window_attention op. Written from the Swin reference code; it does
not use any of our C code's conventions beyond the documented tensor layouts.
"""
import torch
import torch.nn.functional as F


def window_partition(x, w):
    """(B, H, W, C) -> (B * nW, w, w, C), windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, w, w, C)


def window_reverse(windows, w, H, W):
    """(B * nW, w, w, C) -> (B, H, W, C)."""
    B = int(windows.shape[0] / (H * W / w / w))
    x = windows.view(B, H // w, W // w, w, w, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


def relative_position_index(w):
    """Swin's relative_position_index buffer, (w*w, w*w) int64."""
    coords = torch.stack(torch.meshgrid([torch.arange(w), torch.arange(w)], indexing="ij"))  # 2, w, w
    flat = torch.flatten(coords, 1)  # 2, w*w
    rel = flat[:, :, None] - flat[:, None, :]  # 2, N, N
    rel = rel.permute(1, 2, 0).contiguous()
    rel[:, :, 0] += w - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def shift_attn_mask(Hp, Wp, w, s, dtype=torch.float64):
    """Swin's attn_mask for shift s on a (Hp, Wp) map: (nW, w*w, w*w), 0 or -100."""
    img_mask = torch.zeros((1, Hp, Wp, 1), dtype=dtype)
    h_slices = (slice(0, -w), slice(-w, -s), slice(-s, None))
    w_slices = (slice(0, -w), slice(-w, -s), slice(-s, None))
    cnt = 0
    for h in h_slices:
        for ww in w_slices:
            img_mask[:, h, ww, :] = cnt
            cnt += 1
    mask_windows = window_partition(img_mask, w).view(-1, w * w)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))


def window_attention(qkv_map, table, heads, w, shift):
    """qkv_map (B, Hp, Wp, 3C) already padded + rolled; table ((2w-1)^2, heads).
    Returns out (B, Hp, Wp, C) and probs (B, nW, heads, w*w, w*w)."""
    B, Hp, Wp, C3 = qkv_map.shape
    C = C3 // 3
    hd = C // heads
    scale = hd ** -0.5
    N = w * w
    x = window_partition(qkv_map, w).view(-1, N, C3)  # B_, N, 3C
    B_ = x.shape[0]
    qkv = x.reshape(B_, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * scale
    attn = q @ k.transpose(-2, -1)
    rpi = relative_position_index(w)
    bias = table[rpi.view(-1)].view(N, N, -1).permute(2, 0, 1).contiguous()
    attn = attn + bias.unsqueeze(0)
    nW = (Hp // w) * (Wp // w)
    if shift > 0:
        mask = shift_attn_mask(Hp, Wp, w, shift, dtype=attn.dtype)
        attn = attn.view(B_ // nW, nW, heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, N, N)
    attn = F.softmax(attn, dim=-1)
    o = (attn @ v).transpose(1, 2).reshape(B_, N, C)
    out = window_reverse(o.view(-1, w, w, C), w, Hp, Wp)
    return out, attn.view(B, nW, heads, N, N)
