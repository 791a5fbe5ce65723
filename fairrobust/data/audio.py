"""Audio decoding and preprocessing: G.711 mu-law, WAV/FLAC/MP3, mono, resampling, fixed length.

Every loader turns a source clip into one float32 row of the dataset with
:func:`preprocess`: check the samples (non-empty, finite), down-mix to mono,
resample to the target rate with soxr (high quality), clip to [-1, 1], then
centre crop or zero pad (the clip is centred in the window) to a fixed number
of samples. Decoding errors become ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "check_samples",
    "fix_length",
    "mulaw_decode",
    "mulaw_encode",
    "preprocess",
    "read_audio",
    "read_mulaw",
    "resample",
    "to_mono",
]

_MULAW_BIAS = 0x84  # 132: G.711 bias added before the segment search
_MULAW_CLIP = 32635


def _mulaw_table() -> np.ndarray:
    """The 256-entry G.711 mu-law expansion table as int16 (same values as ``audioop.ulaw2lin``)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # codes are stored bit-inverted
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


_MULAW_TABLE = _mulaw_table()


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """Expand 8-bit G.711 mu-law codes to float32 samples in [-1, 1].

    ITU-T G.711 expansion: with ``u = ~code``, sign ``s = u & 0x80``, exponent
    ``e = (u >> 4) & 7`` and mantissa ``m = u & 15``, the 16-bit sample is
    ``(-1)^s * (((m << 3) + 132) << e) - 132)``; it is divided by 32768. Code
    0xFF (and 0x7F) is silence; 0x00 is the most negative value -32124/32768.

    Args:
      codes: uint8 array of any shape.

    Returns:
      float32 array of the same shape, in [-0.9804, 0.9804].
    """
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise ValueError(f"codes: expected dtype uint8, got {codes.dtype}")
    return _MULAW_TABLE[codes].astype(np.float32) / np.float32(32768.0)


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """Compress float samples in [-1, 1] to 8-bit G.711 mu-law codes (inverse of decode).

    Args:
      x: float array of any shape; values outside [-1, 1] are clipped.

    Returns:
      uint8 array of the same shape.
    """
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767)
    pcm = pcm.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), _MULAW_CLIP) + _MULAW_BIAS
    # exponent = position of the highest set bit above bit 7 (segment number 0..7)
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def read_mulaw(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a headerless 8-bit mu-law file as raw uint8 codes ``[T]`` (see :func:`mulaw_decode`)."""
    path = Path(path)
    try:
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: audio file not found") from None


def _check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE header declares more audio data than the file holds."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise ValueError(
                f"{path}: corrupt WAV header: expected 'RIFF....WAVE', got {head[:12]!r}"
            )
        if head[:4] == b"RF64":
            return  # 64-bit sizes live in a ds64 chunk; libsndfile checks those itself
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                # 0 and 0xFFFFFFFF are streaming placeholders, not a declared length
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise ValueError(
                        f"{path}: truncated WAV: header declares {chunk_size} bytes of audio "
                        f"data, the file holds {available}"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)
        raise ValueError(f"{path}: corrupt WAV: expected a 'data' chunk, found none")


# MPEG audio: bitrate (kbit/s) tables for Layer III, indexed by the 4-bit header field.
_MP3_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2 / 2.5
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _check_mp3_complete(path: Path) -> None:
    """Raise if the last MPEG Layer III frame of ``path`` runs past the end of the file."""
    data = path.read_bytes()
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # skip an ID3v2 tag (syncsafe size)
        pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    n_frames = 0
    while pos + 4 <= len(data):
        h = int.from_bytes(data[pos : pos + 4], "big")
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        bitrate_i, rate_i = (h >> 12) & 15, (h >> 10) & 3
        if (h >> 21) != 0x7FF or version == 1 or layer != 1 or bitrate_i in (0, 15) or rate_i == 3:
            break  # not a Layer III frame header: trailing tag or junk
        bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_i] * 1000
        rate = _MP3_RATES[version][rate_i]
        frame_len = (144 if version == 3 else 72) * bitrate // rate + ((h >> 9) & 1)
        if pos + frame_len > len(data):
            raise ValueError(
                f"{path}: truncated MP3: frame {n_frames} needs {frame_len} bytes, "
                f"{len(data) - pos} left in the file"
            )
        pos += frame_len
        n_frames += 1
    if n_frames == 0:
        raise ValueError(f"{path}: corrupt MP3: expected MPEG Layer III frames, found none")


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Decode a WAV / FLAC / OGG / MP3 file (anything libsndfile reads).

    WAV and MP3 files are first checked for truncation (header or last frame
    longer than the file), which libsndfile would otherwise pass silently. MP3
    falls back to librosa / audioread if this libsndfile has no MP3 support.

    Args:
      path: audio file.

    Returns:
      ``(samples, sample_rate)``: float32 ``[T, channels]`` in [-1, 1] and Hz.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: corrupt or truncated file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    suffix = path.suffix.lower()
    if suffix in (".wav", ".wave"):
        _check_wav_complete(path)
    elif suffix == ".mp3":
        _check_mp3_complete(path)
        if "MP3" not in sf.available_formats():  # old libsndfile (< 1.1): use audioread
            try:
                y, sr = librosa.load(path, sr=None, mono=False)
            except Exception as exc:
                raise ValueError(f"{path}: could not decode MP3 ({exc})") from exc
            return np.atleast_2d(y).T.astype(np.float32), int(sr)
    try:
        samples, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: could not decode audio ({exc})") from exc
    return samples, int(sr)


def check_samples(samples: np.ndarray, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` if ``samples`` is empty or not finite."""
    if samples.size == 0:
        raise ValueError(f"{source}: zero-length clip: expected at least one sample")
    if not np.isfinite(samples).all():
        bad = int(np.size(samples) - np.isfinite(samples).sum())
        raise ValueError(f"{source}: {bad} NaN/Inf samples: expected finite audio")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix ``[T, channels]`` (or ``[T]``) to ``[T]`` by averaging the channels."""
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float32 signal ``[T]`` with soxr (``"HQ"``); identity when rates agree."""
    if orig_sr == target_sr:
        return x.astype(np.float32, copy=False)
    return soxr.resample(x.astype(np.float32, copy=False), orig_sr, target_sr, quality="HQ")


def fix_length(x: np.ndarray, length: int) -> np.ndarray:
    """Centre crop or symmetrically zero pad ``x [T]`` to ``[length]``.

    A longer clip keeps its middle ``length`` samples (start ``(T - length) // 2``);
    a shorter one is placed in the middle, with ``(length - T) // 2`` zeros before.
    """
    n = x.shape[0]
    if n >= length:
        start = (n - length) // 2
        return x[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - n) // 2
    out[start : start + n] = x
    return out


def preprocess(
    samples: np.ndarray, sr: int, target_sr: int, length: int, source: str
) -> np.ndarray:
    """Check, down-mix, resample, clip to [-1, 1] and fix the length of one clip.

    Args:
      samples: float ``[T]`` or ``[T, channels]``.
      sr: its sample rate in Hz.
      target_sr: output sample rate in Hz.
      length: output number of samples.
      source: file name used in error messages.

    Returns:
      float32 ``[length]`` in [-1, 1].
    """
    check_samples(samples, source)
    y = resample(to_mono(samples), sr, target_sr)
    if y.size == 0:
        raise ValueError(f"{source}: clip shorter than one sample at {target_sr} Hz")
    return fix_length(np.clip(y, -1.0, 1.0), length)
