-- Helper of bench/crypto: ops/s of key:sign and pub:verify for one key each.
local crypto = require "wxhw.crypto"
local rsa_path, ec_path, secs = arg[1], arg[2], tonumber(arg[3]) or 3
local clock = require("wxhw.clock").monotonic

local function read(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end

local function rate(fn)
  local n, t0 = 0, clock()
  local deadline = t0 + secs
  repeat
    for _ = 1, 16 do fn() end
    n = n + 16
  until clock() >= deadline
  return n / (clock() - t0)
end

local msg = "GET\n/v3/iotmanage/devices?limit=100&offset=0\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
local out = {}
for _, path in ipairs({ rsa_path, ec_path }) do
  local key = assert(crypto.private_key(read(path)))
  local pub = key:public_key()
  local sig = key:sign(msg)
  out[#out + 1] = string.format("%.1f", rate(function() key:sign(msg) end))
  out[#out + 1] = string.format("%.1f", rate(function() pub:verify(msg, sig) end))
end
print(table.concat(out, " "))
