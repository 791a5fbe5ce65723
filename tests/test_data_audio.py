"""Decoding and preprocessing: mu-law by hand, resample, crop / pad, bad files."""

import numpy as np
import pytest
import soundfile as sf
from fixtures_data import tone, write_wav

from fairrobust.data import audio


def test_mulaw_hand_values():
    # G.711: code 0x00 -> u = 0xFF: sign set, e = 7, m = 15: ((15 * 8 + 132) << 7) - 132 = 32124
    codes = np.array([0x00, 0x80, 0xFF, 0x7F, 0xEF, 0x70], dtype=np.uint8)
    # 0xEF -> u = 0x10: e = 1, m = 0: (132 << 1) - 132 = 132;  0x70 -> u = 0x8F: -((15*8+132) - 132)
    expected = np.array([-32124, 32124, 0, 0, 132, -120]) / 32768
    np.testing.assert_array_equal(audio.mulaw_decode(codes), expected.astype(np.float32))


def test_mulaw_matches_closed_form_and_is_monotone():
    codes = np.arange(256, dtype=np.uint8)
    y = audio.mulaw_decode(codes).astype(np.float64)
    # the segmented G.711 law approximates the continuous mu-law (mu = 255) compressor
    # F(x) = ln(1 + 255 |x|) / ln(256): F(decoded) recovers the 7-bit level within 2 steps
    u = (~codes.astype(np.int32)) & 0xFF
    level = (u & 0x7F) / 127.0
    compressed = np.log1p(255 * np.abs(y) * 32768 / 32124) / np.log(256)
    assert np.max(np.abs(compressed - level)) * 127 < 2
    assert np.all(np.sign(y[u & 0x7F > 0]) == np.where(u & 0x80, -1, 1)[u & 0x7F > 0])
    pos = y[0x80:][::-1]  # codes 0xFF..0x80: increasing magnitudes
    assert np.all(np.diff(pos) > 0)
    assert np.all(np.abs(y) <= 1)


def test_mulaw_encode_roundtrip():
    codes = np.arange(256, dtype=np.uint8)
    back = audio.mulaw_encode(audio.mulaw_decode(codes))
    same = back == codes
    assert same.sum() == 255 and not same[0x7F]  # -0 (0x7F) encodes as +0 (0xFF)
    with pytest.raises(ValueError, match="uint8"):
        audio.mulaw_decode(np.zeros(3, np.int16))


def test_fix_length_centre_crop_and_pad():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(x, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.fix_length(x[:3], 7), [0, 0, 0, 1, 2, 0, 0])
    assert audio.fix_length(x, 10) is not None and audio.fix_length(x, 10).shape == (10,)


def test_resample_preserves_frequency_and_length():
    x = tone(8000, 8000, 500, amp=0.5, seed=0)
    y = audio.resample(x, 8000, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / len(y) - 500) < 2


def test_preprocess_stereo_downmix_and_clip(tmp_path):
    x = np.stack([np.full(4800, 0.5, np.float32), np.zeros(4800, np.float32)], axis=1)
    p = write_wav(tmp_path / "s.wav", x, 48000)
    samples, sr = audio.read_audio(p)
    assert samples.shape == (4800, 2) and sr == 48000
    y = audio.preprocess(samples, sr, 16000, 16000, "s.wav")
    assert y.shape == (16000,) and np.all(np.abs(y) <= 1)
    # 0.1 s -> 1600 samples at 16 kHz, centred: zeros, then samples 7200..8800, then zeros
    np.testing.assert_allclose(y[7300:8700], 0.25, atol=2e-3)
    assert np.all(y[:7100] == 0) and np.all(y[8900:] == 0)


def test_corrupt_wav_header_names_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"NOTAWAVEFILE" + bytes(100))
    with pytest.raises(ValueError, match=r"bad\.wav.*corrupt WAV header"):
        audio.read_audio(p)


def test_truncated_wav_names_file(tmp_path):
    p = write_wav(tmp_path / "t.wav", tone(8000, 8000), 8000)
    p.write_bytes(p.read_bytes()[:-500])
    with pytest.raises(ValueError, match=r"t\.wav.*truncated WAV"):
        audio.read_audio(p)


def test_truncated_mp3_names_file(tmp_path):
    p = tmp_path / "t.mp3"
    sf.write(p, tone(24000, 48000), 48000, format="MP3")
    y, sr = audio.read_audio(p)
    assert sr == 48000 and y.shape[1] == 1
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t\.mp3.*truncated MP3"):
        audio.read_audio(p)


def test_nan_and_zero_length_clips(tmp_path):
    x = tone(800, 8000)
    x[5] = np.nan
    p = write_wav(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    samples, sr = audio.read_audio(p)
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN/Inf"):
        audio.preprocess(samples, sr, 16000, 16000, "nan.wav")
    z = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    samples, sr = audio.read_audio(z)
    with pytest.raises(ValueError, match=r"empty\.wav.*zero-length"):
        audio.preprocess(samples, sr, 16000, 16000, "empty.wav")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        audio.read_audio(tmp_path / "nope.wav")
