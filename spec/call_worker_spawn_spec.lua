-- How the supervisor starts a call's worker: without a shell (wxhw.fileio's
-- proc.spawn), keeping none of the supervisor's descriptors, appending to
-- the workers' log, and leaving no zombie.
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"
local files = require "support.files"

local push_msg = require("support.voip_push").join

local function count_fds(pid)
  local n = 0
  for _ in select(2, files.sh("ls /proc/" .. pid .. "/fd")):gmatch("%d+") do n = n + 1 end
  return n
end

describe("call worker spawn #nosan", function()
  local dir, live
  before_each(function() dir, live = files.tmpdir(), {} end)
  after_each(function()
    for _, s in ipairs(live) do s:close() end
    files.sh("rm -rf " .. files.quote(dir))
  end)

  local function start(command, log)
    local calls = call.new{ ring_timeout = 5 }
    local sup = assert(supervisor.new{ calls = calls, command = command, log = log, connect_timeout = 5 })
    live[#live + 1] = sup
    local m = push_msg()
    return calls, sup, m, calls:join_voip_room(m)
  end

  it("a worker program that is not there: the call is refused at once, the error names it", function()
    local calls, _, m, res = start({ "/nonexistent/worker" })
    assert.equal(4, res.errcode)
    local s = calls:get(m.RoomId)
    assert.equal("ABORTED", s.state)
    assert.truthy(s.error:find("/nonexistent/worker", 1, true), s.error)
  end)

  it("passes arguments as they are, keeps no descriptor of ours, appends to the log", function()
    local log = dir .. "/workers.log"
    files.write(log, "before\n")
    local arg = "it's $(not) `run` ; by a shell"
    local script = dir .. "/worker.sh"
    files.write(script, '#!/bin/sh\nprintf "%s|%s\\n" "$1" "$WXHW_CALL_ROOM"\nexec sleep 30\n')
    files.sh("chmod +x " .. files.quote(script))
    local _, sup, m, res = start({ script, arg }, log)
    assert.equal(0, res.errcode)
    local pid = sup:worker(m.RoomId).pid
    sup:run{ seconds = 3, until_fn = function() return files.read(log):find("|", 1, true) ~= nil end }
    assert.equal("before\n" .. arg .. "|" .. m.RoomId .. "\n", files.read(log))
    assert.equal(3, count_fds(pid)) -- 0, 1, 2: not the supervisor's socket
    sup:close()
    assert.is_false(supervisor.alive(pid))
    -- waited for: not a zombie of ours
    assert.equal("", (select(2, files.sh("ps -o stat= -p " .. pid)):gsub("%s", "")))
  end)
end)
