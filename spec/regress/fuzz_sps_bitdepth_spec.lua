-- Found by the annexb fuzz target in CI: a High-profile SPS whose
-- bit_depth_luma_minus8 is an Exp-Golomb value near 2^32 overflowed an int
-- (UBSan: signed integer overflow, csrc/media/sps.c). Such SPS must be
-- refused with a reason; the ASan+UBSan run of this spec aborts on the bug.
local media = require "wxhw.media"

local function bits_to_bytes(bits)
  bits = bits .. string.rep("0", (8 - #bits % 8) % 8)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(b) return string.char(tonumber(b, 2)) end))
end

describe("regression: SPS with an absurd bit depth #c", function()
  local PPS = "\104\206\60\128"

  local function sps(bit_depth_ue)
    -- seq_parameter_set_id = 0, chroma_format_idc = 1, then bit_depth_luma_minus8
    return "\103\100\0\31" .. bits_to_bytes("1" .. "010" .. bit_depth_ue .. "1" .. "1" .. "1")
  end

  it("refuses an Exp-Golomb bit depth of 2^32-2 instead of overflowing", function()
    local huge = string.rep("0", 31) .. "1" .. string.rep("1", 31)
    local mux, buf = media.flv_muxer{ audio = false }, media.buffer()
    local n, err = mux:video("\0\0\0\1" .. sps(huge) .. "\0\0\0\1" .. PPS .. "\0\0\0\1\101\136\4\5", 0, 0, buf)
    assert.is_truthy(err, "an SPS with bit depth 2^32+6 was accepted")
    assert.are.equal(0, n or 0)
  end)

  it("replays the fuzzer's input without crashing", function()
    local crash = "AAAAAeeAEQBCAAAAAP//////qx4fICEiIyQlJid3eHmGe3x9fjAAAB4B////////f4ABQAEMAQAAAejm5QAAAUJnwCmMjQ0AAAAAAUEuJAPCIRqAAADn"
    local data = require("wxhw.crypto").base64_decode(crash)
    local mux, buf = media.flv_muxer{ audio = false }, media.buffer()
    mux:video(data:sub(2), 0, 0, buf) -- byte 1 selected the codec in the fuzz target
    mux:video(data:sub(2), 40, 0, buf)
  end)

  it("still accepts an ordinary High-profile SPS (bit depth 8)", function()
    local mux, buf = media.flv_muxer{ audio = false }, media.buffer()
    local n, err = mux:video("\0\0\0\1" .. sps("1") .. "\0\0\0\1" .. PPS .. "\0\0\0\1\101\136\4\5", 0, 0, buf)
    assert.is_nil(err)
    assert.are.equal(2, n)
  end)
end)
