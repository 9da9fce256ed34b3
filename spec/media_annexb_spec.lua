-- Annex-B scanner (C, memchr-based) against a plain Lua splitter, and the
-- "prepare for WeChat" parameter-set reorderer.
local media = require "wxhw.media"
local u = require "support.media_util"
local ff = require "support.ffmpeg"

--- Random NAL body with many zeros, made legal by emulation prevention.
local function epb_nal(r, hdr, len)
  local t, zeros = { hdr }, 0
  for _ = 2, len do
    local b = r(4) == 1 and 0 or (r(4) == 1 and r(4) - 1 or r(256) - 1)
    if zeros >= 2 and b <= 3 then
      t[#t + 1] = "\3"
      zeros = 0
    end
    t[#t + 1] = string.char(b)
    zeros = b == 0 and zeros + 1 or 0
  end
  if zeros > 0 then t[#t + 1] = "\128" end -- rbsp stop bit: never ends in 00
  return table.concat(t)
end

describe("media Annex-B #c", function()
  it("finds the same NALs as a plain Lua splitter on 300 random streams", function()
    local r = u.rng(2024)
    for trial = 1, 300 do
      local nals, parts = {}, {}
      if trial % 7 == 0 then parts[1] = "\9\9garbage" end -- bytes before the first start code
      for i = 1, r(12) do
        local nal = epb_nal(r, string.char(r(31)), r(trial % 5 == 0 and 3000 or 200))
        nals[#nals + 1] = nal
        local sc = ({ "\0\0\1", "\0\0\0\1", "\0\0\0\0\1" })[r(3)]
        parts[#parts + 1] = sc .. nal
        if r(5) == 1 then parts[#parts + 1] = string.rep("\0", r(4)) end -- trailing_zero_8bits
      end
      local s = table.concat(parts)
      local got = media.nals(s)
      assert.are.same(ff.split_nals(s), got)
      assert.are.same(nals, got)
      assert.are.equal(#nals, media.nal_count(s))
    end
  end)

  it("converts Annex-B to 4-byte length prefixes", function()
    local a, b = u.nal("\103", 300, 1), u.nal("\101", 5, 2)
    assert.are.equal("\0\0\1\44" .. a .. "\0\0\0\5" .. b,
      media.annexb_to_avcc("\0\0\1" .. a .. "\0\0\0\0\1" .. b .. "\0"))
    assert.are.equal("", media.annexb_to_avcc("garbage"))
  end)

  it("handles degenerate inputs", function()
    assert.are.same({}, media.nals(""))
    assert.are.same({}, media.nals("\0\0"))
    assert.are.same({}, media.nals("\0\0\1"))
    assert.are.same({}, media.nals("\0\0\1\0\0\1\0\0\0\1"))
    assert.are.same({}, media.nals("no start code at all"))
    assert.are.same({ "\101" }, media.nals("\0\0\1\101\0\0\0"))
    assert.are.same({ "\1", "\2" }, media.nals("\0\0\1\1\0\0\1\2"))
  end)
end)

describe("media reorderer (prepare for WeChat) #c", function()
  local SPS, PPS = "\103\66\192\41\140", "\104\206\60\128"
  local AUD, SEI = "\9\240", "\6\5\1\128"
  local P1, IDR, P2 = u.nal("\65", 30, 1), u.nal("\101", 40, 2), u.nal("\65", 30, 3)
  it("drops until the first IDR, puts cached SPS/PPS in front of every IDR", function()
    local r, buf = media.reorderer(), media.buffer()
    assert.are.equal(0, r:push(u.annexb({ AUD, P1 }), 0, buf))
    assert.are.equal(0, r:push(u.annexb({ SPS, PPS, SEI, P1 }), 1, buf)) -- cached, not sent
    assert.are.equal(1, r:push(u.annexb({ AUD, SEI, IDR }, true), 2, buf))
    assert.are.equal(u.annexb({ SPS, PPS, SEI, IDR }), buf:get(1))
    assert.is_true(buf:meta(1).key)
    assert.are.equal(2, buf:meta(1).ts)
    assert.are.equal(1, r:push(u.annexb({ AUD, P2 }), 3, buf))
    assert.are.equal(u.annexb({ P2 }), buf:get(1))
    assert.is_false(buf:meta(1).key)
    -- new parameter sets replace the cache
    local SPS2 = "\103\77\0\31\171"
    assert.are.equal(1, r:push(u.annexb({ PPS, IDR, SPS2 }), 4, buf))
    assert.are.equal(u.annexb({ SPS2, PPS, IDR }), buf:get(1))
  end)

  it("drops a key frame that has no parameter sets yet", function()
    local r, buf = media.reorderer(), media.buffer()
    assert.are.equal(0, r:push(u.annexb({ IDR }), 0, buf))
    assert.are.equal(1, r:push(u.annexb({ SPS, PPS, IDR }), 0, buf))
  end)

  it("orders VPS, SPS, PPS for H.265 and keys on IRAP types", function()
    local VPS, HSPS, HPPS = "\64\1\12\1", "\66\1\1\1", "\68\1\193\114"
    local CRA, TRAIL = "\42\1\175\9" , "\2\1\208\9" -- types 21 (CRA) and 1
    local r, buf = media.reorderer{ codec = "h265" }, media.buffer()
    assert.are.equal(0, r:push(u.annexb({ TRAIL }), 0, buf))
    assert.are.equal(1, r:push(u.annexb({ HPPS, HSPS, VPS, "\70\1\80", CRA }), 0, buf)) -- with an AUD (35)
    assert.are.equal(u.annexb({ VPS, HSPS, HPPS, CRA }), buf:get(1))
  end)
end)
