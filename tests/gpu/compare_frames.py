#!/usr/bin/env python3
"""Compares the PNG-frame videos of two `linvideo bench --format=png --out_dir=DIR` runs.

Each DIR holds seed-<S>.png/ folders of frame_<NNNN>.png files; the videos of the seeds present in
both are compared frame by frame. Prints one line per video and a summary line:

  COMPARE videos=V identical=I max_abs=M mean_abs=A min_psnr=P dB

(identical = byte-identical files; pixel numbers over all compared videos; PSNR of 8-bit RGB,
inf when equal). Python standard library only (the GPU machine has no Pillow guarantee): the PNG
reader handles what media/png.cc writes, 8-bit RGB, non-interlaced, filters 0-4.

usage: compare_frames.py DIR_A DIR_B     exit 0 when at least one video was compared
"""
import math
import os
import struct
import sys
import zlib

try:  # faster where present; the reader below is the fallback
    from PIL import Image
except ImportError:
    Image = None
try:
    import numpy as np
except ImportError:
    np = None


def read_png_rgb(path):
    if Image is not None:
        with Image.open(path) as im:
            return im.width, im.height, im.convert("RGB").tobytes()
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width, height = 8, [], 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color != 2 or interlace != 0:
                raise ValueError(f"{path}: only 8-bit RGB non-interlaced PNG is read here")
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * 3
    out = bytearray(stride * height)
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = row[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 1:
                row[x] = (row[x] + a) & 255
            elif f == 2:
                row[x] = (row[x] + b) & 255
            elif f == 3:
                row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            elif f != 0:
                raise ValueError(f"{path}: bad filter {f} in row {y}")
        out[y * stride:(y + 1) * stride] = row
        prev = row
    return width, height, bytes(out)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 64
    a_dir, b_dir = sys.argv[1], sys.argv[2]
    names = sorted(set(os.listdir(a_dir)) & set(os.listdir(b_dir)))
    videos = identical = 0
    max_abs, abs_sum, sq_sum, count, min_psnr = 0, 0, 0, 0, math.inf
    for name in names:
        fa, fb = os.path.join(a_dir, name), os.path.join(b_dir, name)
        frames = sorted(os.listdir(fa))
        if frames != sorted(os.listdir(fb)):
            print(f"{name}: frame lists differ ({len(frames)} vs {len(os.listdir(fb))})")
            continue
        same = all(open(os.path.join(fa, f), "rb").read() == open(os.path.join(fb, f), "rb").read()
                   for f in frames)
        v_max, v_sq, v_n = 0, 0, 0
        if not same:
            for f in frames:
                wa, ha, pa = read_png_rgb(os.path.join(fa, f))
                wb, hb, pb = read_png_rgb(os.path.join(fb, f))
                if (wa, ha) != (wb, hb):
                    raise ValueError(f"{name}/{f}: {wa}x{ha} vs {wb}x{hb}")
                if np is not None:
                    d = np.abs(np.frombuffer(pa, np.uint8).astype(np.int64) -
                               np.frombuffer(pb, np.uint8).astype(np.int64))
                    v_max = max(v_max, int(d.max()))
                    abs_sum += int(d.sum())
                    v_sq += int((d * d).sum())
                else:
                    for x, y in zip(pa, pb):
                        d = abs(x - y)
                        v_max = max(v_max, d)
                        abs_sum += d
                        v_sq += d * d
                v_n += len(pa)
        else:
            for f in frames:  # pixels from the IHDR chunk: width x height x 3
                w, h = struct.unpack(">II", open(os.path.join(fa, f), "rb").read(24)[16:24])
                v_n += w * h * 3
        videos += 1
        identical += same
        max_abs = max(max_abs, v_max)
        sq_sum += v_sq
        count += v_n
        psnr = math.inf if v_sq == 0 else 10 * math.log10(255 ** 2 / (v_sq / v_n))
        min_psnr = min(min_psnr, psnr)
        print(f"{name}: {'identical' if same else 'differs'} frames={len(frames)} max_abs={v_max} "
              f"psnr={psnr:.2f} dB")
    mean_abs = abs_sum / count if count else 0.0
    print(f"COMPARE videos={videos} identical={identical} max_abs={max_abs} mean_abs={mean_abs:.4f} "
          f"min_psnr={min_psnr:.2f} dB")
    return 0 if videos else 1


if __name__ == "__main__":
    sys.exit(main())
