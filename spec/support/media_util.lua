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

return M
