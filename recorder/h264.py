"""H.264 Annex-B helpers: split access units into NAL units and read the SPS (size, codec string)."""

from __future__ import annotations

from dataclasses import dataclass

NAL_IDR = 5
NAL_SPS = 7


def nal_units(access_unit: bytes) -> list[bytes]:
    """NAL units of an Annex-B access unit, start codes removed."""
    units: list[bytes] = []
    i = access_unit.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = access_unit.find(b"\x00\x00\x01", start)
        end = len(access_unit) if nxt < 0 else nxt
        unit = access_unit[start:end]
        if nxt >= 0 and unit.endswith(b"\x00"):  # the zero byte of a following 4-byte start code
            unit = unit.rstrip(b"\x00")
        if unit:
            units.append(unit)
        i = nxt
    return units


def find_sps(access_unit: bytes) -> bytes | None:
    for unit in nal_units(access_unit):
        if unit[0] & 0x1F == NAL_SPS:
            return unit
    return None


def has_idr(access_unit: bytes) -> bool:
    return any(unit[0] & 0x1F == NAL_IDR for unit in nal_units(access_unit))


class _Bits:
    """Exp-Golomb bit reader over an RBSP (emulation-prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3]  # IndexError on a truncated SPS is the caller's ValueError
        value = (byte >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


@dataclass(frozen=True)
class SpsInfo:
    width: int
    height: int
    codec: str  # RFC 6381 `avc1.PPCCLL`


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Picture size and codec string from an SPS NAL unit (header byte included)."""
    try:
        return _parse_sps(nal)
    except IndexError as exc:
        raise ValueError("truncated SPS") from exc


def _parse_sps(nal: bytes) -> SpsInfo:
    if len(nal) < 4 or nal[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS")
    codec = f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
    bits = _Bits(_rbsp(nal[1:]))
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    separate_planes = 0
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = bits.ue()
        if chroma_format == 3:
            separate_planes = bits.bit()
        bits.ue()  # bit_depth_luma
        bits.ue()  # bit_depth_chroma
        bits.bit()  # qpprime_y_zero_transform_bypass
        if bits.bit():  # seq_scaling_matrix_present
            for i in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_allowed
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field
    bits.bit()  # direct_8x8_inference
    width = width_mbs * 16
    height = height_map_units * 16 * (2 - frame_mbs_only)
    if bits.bit():  # frame_cropping
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        array_type = 0 if separate_planes else chroma_format
        crop_x = {0: 1, 1: 2, 2: 2, 3: 1}[array_type]
        crop_y = {0: 1, 1: 2, 2: 1, 3: 1}[array_type] * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return SpsInfo(width=width, height=height, codec=codec)
