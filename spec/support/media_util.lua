--- Helpers for the media specs: deterministic RNG (same sequence under Lua 5.4
-- and LuaJIT), synthetic NALs, byte helpers.
local M = {}

--- Park-Miller minimal standard generator; exact in doubles.
function M.rng(seed)
  local x = seed % 2147483647
  if x <= 0 then x = x + 2147483646 end
  return function(n) -- integer in 1..n
    x = (x * 16807) % 2147483647
    return (x % n) + 1
  end
end

--- A NAL of `len` bytes with header byte(s) `hdr` and a body that never holds
-- 00 00 0x (no emulation prevention needed) and never ends in 00.
function M.nal(hdr, len, seed)
  local r = M.rng(seed or len)
  local t = { hdr }
  local n = len - #hdr
  for i = 1, n do t[#t + 1] = string.char(r(255)) end -- 1..255, never 0
  return table.concat(t)
end

function M.annexb(nals, short)
  local sc = short and "\0\0\1" or "\0\0\0\1"
  return sc .. table.concat(nals, sc)
end

function M.shuffle(t, r)
  for i = #t, 2, -1 do
    local j = r(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

function M.hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- An ADTS stream split into its frames (frame length from each header).
function M.adts_frames(s)
  local t, pos = {}, 1
  while pos + 6 <= #s do
    local b3, b4, b5 = s:byte(pos + 3, pos + 5)
    local len = (b3 % 4) * 2048 + b4 * 8 + math.floor(b5 / 32)
    t[#t + 1] = s:sub(pos, pos + len - 1)
    pos = pos + len
  end
  return t
end

return M
