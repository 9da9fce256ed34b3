--- MD5 (RFC 1321) in plain Lua 5.4 for the emulator, which runs under lua5.4
-- only: WeCom's verify_device push carries `device_sn_md5`, and the C core
-- has no MD5 (nothing else in wxhw needs it).
local M = {}

local S = { 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21 }
local K = {}
for i = 1, 64 do K[i] = math.floor(math.abs(math.sin(i)) * 2 ^ 32) & 0xffffffff end

local function rotl(x, n) return ((x << n) | (x >> (32 - n))) & 0xffffffff end

--- Lower-case hex MD5 of the string s.
function M.hex(s)
  local len = #s
  s = s .. "\128" .. ("\0"):rep((55 - len) % 64) .. string.pack("<I8", (len * 8) & 0xffffffffffffffff)
  local a0, b0, c0, d0 = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
  local X = {}
  for chunk = 1, #s, 64 do
    for i = 0, 15 do X[i] = string.unpack("<I4", s, chunk + i * 4) end
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f, g
      if i < 16 then f, g = (b & c) | (~b & d), i
      elseif i < 32 then f, g = (d & b) | (~d & c), (5 * i + 1) % 16
      elseif i < 48 then f, g = b ~ c ~ d, (3 * i + 5) % 16
      else f, g = c ~ (b | (~d & 0xffffffff)), (7 * i) % 16 end
      f = (f + a + K[i + 1] + X[g]) & 0xffffffff
      a, d, c = d, c, b
      b = (b + rotl(f, S[i + 1])) & 0xffffffff
    end
    a0, b0 = (a0 + a) & 0xffffffff, (b0 + b) & 0xffffffff
    c0, d0 = (c0 + c) & 0xffffffff, (d0 + d) & 0xffffffff
  end
  return (string.pack("<I4I4I4I4", a0, b0, c0, d0):gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))
end

return M
