"""Knowledge of devices as data plus decoders: MQTT payload formats, Modbus register maps, line formats."""

from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import DECODERS, Decoder, decode_to_json, get_decoder, make_options
from devices.line import LineFormat
from devices.modbus import (
    ReadBlock,
    RegisterMap,
    decode_modbus_payload,
    encode_modbus_payload,
    get_register_map,
    load_presets,
    read_plan,
)

__all__ = [
    "DECODERS",
    "DecodeOptions",
    "Decoded",
    "DecodedValue",
    "Decoder",
    "LineFormat",
    "ReadBlock",
    "RegisterMap",
    "decode_modbus_payload",
    "decode_to_json",
    "encode_modbus_payload",
    "get_decoder",
    "get_register_map",
    "load_presets",
    "make_options",
    "read_plan",
]
