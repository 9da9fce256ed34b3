--- `wxhw devices list`: stream a merchant's WeChat Pay IoT devices
-- (/v3/iotmanage/devices), one per line, with a progress line on a terminal.
-- Without merchant options it lists the built-in emulator's fleet.
local M = {}

local usage = [[
usage: wxhw devices list [--json] [--limit N] [options]
  --json               JSON Lines: one JSON object per device and line (all API fields,
                       codes and decoded names), nothing else on standard output
  --limit N            stop after N devices (default: all)
  --page-size N        devices per request, 1..100 (default 100)
  --offset N           start at this offset (default 0)
  --concurrency N      pages in flight at once, still within 20 requests/s (default 4)
  --checkpoint FILE    resume an interrupted listing from FILE (created and updated as it goes)
merchant (else the built-in emulator is started, see --emulator-devices):
  --mchid ID --serial-no HEX --private-key FILE [--apiv3-key KEY | env WXHW_PAY_APIV3_KEY]
  [--public-key FILE --public-key-id PUB_KEY_ID_...] [--base-url URL]
  --emulator-devices N fleet size of the built-in emulator (default 1000)]]

local cli_args = require "wxhw.cli.args"
local clock = require "wxhw.clock"
local fileio = require "wxhw.fileio"
local proc = fileio.proc
local FLAGS = { json = true, help = true, quiet = true }


local read = fileio.read_file

-- Starts `wxhw emulator` as a child; returns base_url, pid or nil, message.
local function start_emulator(devices)
  local log = os.tmpname()
  local pid, err = proc.spawn(cli_args.self_argv(false, "emulator", "--port", "0", "--quiet", "--iot-devices", devices,
    "--parent-pid", proc.pid()), { stdin = "null", stdout = log, stderr = "stdout", background = true })
  if not pid then os.remove(log); return nil, "the built-in emulator did not start: " .. tostring(err) end
  local deadline = clock.monotonic() + 20
  while clock.monotonic() < deadline do
    local out = read(log) or ""
    local base = out:match("WXHW_EMULATOR (%S+) %d+")
    if base then os.remove(log); return base, pid end
    if not proc.alive(pid) then break end
    clock.sleep(0.02)
  end
  local out = read(log) or ""
  os.remove(log)
  proc.kill(pid)
  return nil, "the built-in emulator did not start: " .. require("wxhw.errors").cut(out, 300)
end

local function emulator_credentials(base)
  local http = require "wxhw.http"
  local cjson = require "cjson.safe"
  local h = assert(http.new{ timeout = 10 })
  local r, err = h:request{ url = base .. "/__emulator/credentials" }
  h:close()
  if not r then return nil, tostring(err) end
  local c = cjson.decode(r.body)
  return c and c.pay
end

local function config(o)
  if o.mchid then
    local key, err = read(o["private-key"] or "")
    if not key then return nil, "--private-key FILE is required with --mchid (" .. err.message .. ")" end
    local cfg = { mchid = o.mchid, serial_no = o["serial-no"], private_key = key, base_url = o["base-url"],
      apiv3_key = o["apiv3-key"] or os.getenv("WXHW_PAY_APIV3_KEY") }
    if o["public-key"] then
      local pub, perr = read(o["public-key"])
      if not pub then return nil, "--public-key: " .. perr.message end
      cfg.platform_public_key, cfg.platform_public_key_id = pub, o["public-key-id"]
    end
    return cfg
  end
  local base, pid = start_emulator(o["emulator-devices"])
  if not base then return nil, pid end
  local c, err = emulator_credentials(base)
  if not c then
    proc.kill(pid)
    return nil, "emulator credentials: " .. tostring(err)
  end
  return { mchid = c.mchid, serial_no = c.merchant_serial_no, private_key = c.merchant_private_key,
    apiv3_key = c.apiv3_key, platform_public_key = c.platform_public_key,
    platform_public_key_id = c.public_key_id, base_url = base }, pid
end

local function text_line(d)
  local function pair(code, name) return tostring(code or "-") .. ":" .. tostring(name or "?") end
  return table.concat({ d.device_sn or "-", pair(d.device_category_code, d.category_name),
    pair(d.device_class_code, d.class_name), pair(d.app_scene_code, d.app_scene_name),
    d.activation_status or "-", d.device_model or "-" }, "\t")
end

local function list(o)
  local cfg, emu_pid = config(o)
  if not cfg then return nil, emu_pid end
  local pay_mod = require "wxhw.pay"
  local pay, err = pay_mod.new(cfg)
  if not pay then
    if emu_pid then proc.kill(emu_pid) end
    return nil, tostring(err)
  end
  local cjson = require "cjson"
  local paginate = require "wxhw.paginate"
  local tty = not o.quiet and fileio.isatty(2)
  local out_tty = tty and fileio.isatty(1)
  local shown = false -- a progress line is on the terminal
  local progress = tty and function(info)
    io.stderr:write(string.format("\r\27[K%d/%s devices (%d pages)", info.fetched,
      info.total and string.format("%d", info.total) or "?", info.page))
    shown = true
  end or nil
  local pager
  pager, err = pay:iot_devices_pager{ limit = o["page-size"], offset = o.offset, concurrency = o.concurrency,
    checkpoint = o.checkpoint and paginate.file_checkpoint(o.checkpoint) or nil, on_page = progress }
  local n, failure = 0, nil
  if not pager then
    failure = err
  else
    for d, e in pager:iter() do
      if d == false then failure = e; break end
      if shown and out_tty then -- stdout is the same terminal: clear the progress line first
        io.stderr:write("\r\27[K")
        shown = false
      end
      if o.json then
        io.stdout:write(cjson.encode(d), "\n")
      else
        io.stdout:write(text_line(d), "\n")
      end
      n = n + 1
      if o.limit and n >= o.limit then
        pager:ack() -- printed: a resumed run starts after it
        break
      end
    end
  end
  io.stdout:flush()
  if tty then io.stderr:write(string.format("\r\27[K%d devices listed\n", n)) end
  if emu_pid then proc.kill(emu_pid) end
  if failure then return nil, tostring(failure) end
  return n
end

function M.run(args)
  local o, pos = cli_args.parse(args, { flags = FLAGS })
  if o and o.help then print(usage); return 0 end
  if o and pos[1] ~= "list" then o, pos = nil, "expected 'list'" end
  if o and #pos > 1 then o, pos = nil, "unexpected argument '" .. pos[2] .. "'" end
  if o then
    local ok, e = cli_args.integers(o, { { "limit", 1, nil, nil }, { "page-size", 1, 100, 100 }, { "offset", 0, nil, 0 },
                                         { "concurrency", 1, 16, 4 }, { "emulator-devices", 0, 10000000, 1000 } })
    if not ok then o, pos = nil, e end
  end
  if not o then
    io.stderr:write("wxhw devices: ", pos, "\n", usage, "\n")
    return 2
  end
  local n, err = list(o)
  if not n then
    io.stderr:write("wxhw devices: ", err, "\n")
    return 1
  end
  return 0
end

return M
