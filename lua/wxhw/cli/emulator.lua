--- `wxhw emulator`: run the offline WeChat / WeCom / WeChat Pay emulator.
-- The first line on stdout is machine readable: "WXHW_EMULATOR <base_url> <pid>".
local cli_args = require "wxhw.cli.args"
local proc = require("wxhw.fileio").proc

local M = {}

local usage = [[
usage: wxhw emulator [--host 127.0.0.1] [--port N] [--state FILE] [--seed N]
                     [--iot-devices N] [--keys-dir DIR] [--parent-pid PID] [--quiet]
                     [--mp-callback URL] [--openhw-callback URL] [--pay-callback URL]
       wxhw emulator --contract-md [FILE]
  --port 0 picks a free port; the first output line is
  "WXHW_EMULATOR http://HOST:PORT PID" for scripts that start it as a subprocess.
  --parent-pid PID   exit when that process is gone (used by spec/support/emulator.lua)
  --*-callback URL   where to push Mini Program / WeCom openhw / WeChat Pay callbacks (http://)
  --contract-md      print the endpoint reference generated from the emulator's contract, or
                     rewrite its section in FILE (docs/emulator.md)]]

-- `--contract-md [FILE]`: the generated endpoint reference (plain Lua, any runtime).
local function contract_md(file)
  local md = require "wxhw.emulator.contract_md"
  if not file then io.stdout:write(md.render(), "\n"); return 0 end
  local f, err = io.open(file, "r")
  if not f then io.stderr:write("wxhw emulator: ", err, "\n"); return 1 end
  local text = f:read("*a"); f:close()
  f, err = io.open(file, "w")
  if not f then io.stderr:write("wxhw emulator: ", err, "\n"); return 1 end
  f:write(md.splice(text)); f:close()
  return 0
end

-- The emulator is Lua 5.4 code (64-bit integers, string.pack): under LuaJIT
-- (an OpenResty install) it runs from the Lua 5.4 install beside this one.
local function run_under_lua54(args)
  local probe = proc.spawn(cli_args.self_argv(true, "--version"), { stdout = "null", stderr = "null" })
  if not probe or select(2, proc.wait(probe)) ~= 0 then
    io.stderr:write("wxhw emulator: the emulator runs under Lua 5.4 and no wxhw for Lua 5.4 is installed beside ",
      "this one: also run `make install` (same PREFIX) or `luarocks --lua-version 5.4 install` (same tree), ",
      "or give --emulator URL\n")
    return 1
  end
  local pid, err = proc.spawn(cli_args.self_argv(true, "emulator", (table.unpack or unpack)(args)))
  if not pid then io.stderr:write("wxhw emulator: ", tostring(err), "\n"); return 1 end
  local how, n = proc.wait(pid)
  if how == "exit" then return n end
  return how == "signal" and 128 + n or 1
end

function M.run(args)
  local o, err = cli_args.parse(args, { flags = { quiet = true, help = true, ["contract-md"] = true } })
  if o and o.help then print(usage); return 0 end
  if o and o["contract-md"] then return contract_md(err[1]) end
  if rawget(_G, "jit") then return run_under_lua54(args) end
  if o and #err > 0 then o, err = nil, "unexpected argument '" .. err[1] .. "'" end
  if o then
    local ok, e = cli_args.integers(o, { { "port", 0, 65535 }, { "seed", 0, 2^31 }, { "iot-devices", 0, 10000000 },
                                         { "parent-pid", 1, 2^22 } })
    if not ok then o, err = nil, e end
  end
  if o then
    for _, k in ipairs{ "mp", "openhw", "pay" } do
      local url = o[k .. "-callback"]
      if url and not url:match("^http://[^/]") then o, err = nil, "--" .. k .. "-callback must be an http:// URL"; break end
    end
  end
  if not o then
    io.stderr:write("wxhw emulator: ", err, "\n", usage, "\n")
    return 2
  end
  local emulator = require "wxhw.emulator"
  local ok, emu = pcall(emulator.start, {
    host = o.host or "127.0.0.1", port = o.port or 0, state = o.state, seed = o.seed,
    iot_devices = o["iot-devices"], keys_dir = o["keys-dir"], quiet = o.quiet,
  })
  if not ok then
    io.stderr:write("wxhw emulator: cannot start: ", tostring(emu), "\n")
    return 1
  end
  for _, k in ipairs{ "mp", "openhw", "pay" } do
    if o[k .. "-callback"] then emu.callbacks.urls[k] = o[k .. "-callback"] end
  end
  local pid = proc.pid()
  io.stdout:write("WXHW_EMULATOR ", emu.base_url, " ", pid, "\n")
  if not o.quiet then
    local c = emu.credentials
    local lines = {
      "wxhw emulator listening on " .. emu.base_url .. " (pid " .. pid .. ", seed " .. emu.seed .. ")",
      "  WeChat  base_url  " .. emu.base_url .. "   (instead of https://api.weixin.qq.com)",
      "  WeCom   base_url  " .. emu.base_url .. "   (instead of https://qyapi.weixin.qq.com)",
      "  Pay     base_url  " .. emu.base_url .. "   (instead of https://api.mch.weixin.qq.com)",
      "  control           " .. emu.base_url .. "/__emulator/  (credentials, counters, clock, faults)",
      "  Mini Program  appid " .. c.mp.appid .. "  secret " .. c.mp.secret .. "  model_id " .. c.mp.model_id,
      "  Mobile app    appid " .. c.host_app.appid .. "  secret " .. c.host_app.secret,
      "  WeCom corpid " .. c.wecom.corpid .. "  corpsecret " .. c.wecom.corpsecret,
      "  WeCom openhw model_id " .. c.openhw.model_id .. "  model_secret " .. c.openhw.model_secret,
    }
    if emu.pay then
      local p = emu.pay:credentials()
      lines[#lines + 1] = "  Pay mchid " .. p.mchid .. "  APIv3 key " .. p.apiv3_key .. "  merchant serial " .. p.merchant_serial_no
      lines[#lines + 1] = "  Pay merchant private key " .. p.merchant_private_key_path
      lines[#lines + 1] = "  Pay platform public key " .. p.platform_public_key_path .. "  id " .. p.public_key_id
      lines[#lines + 1] = "  Pay platform certificate " .. p.platform_certificate_path .. "  serial " .. p.platform_serial_no
    end
    for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
  end
  io.stdout:flush()
  if o["parent-pid"] then
    local ppid = o["parent-pid"]
    local function watch()
      if not proc.alive(ppid) then emu:stop(); return end
      emu.srv:after(1, watch)
    end
    emu.srv:after(1, watch)
  end
  collectgarbage("generational") -- many short-lived strings per request
  local served, e = pcall(emu.run, emu)
  if not served then -- Ctrl-C (or a crash): keep the state of the last second too
    pcall(emu.close, emu)
    error(e, 0)
  end
  return 0
end

return M
