-- The built-in emulator of a state dir serves one run at a time (issue 14's
-- class "one run's state clobbered by another"). Before the fix two runs
-- started together on one state dir each started an emulator on one state
-- file and log, both used the first one's URL, and when the first run ended
-- and stopped it the second failed all 200 devices after 85 s of retries
-- (exit 3).
local files = require "support.files"

local ROOT, q = files.cwd(), files.quote

describe("provision: two runs on one state dir's built-in emulator", function()
  it("one runs, the other is refused at once (exit 4) and sends nothing", function()
    local dir = files.tmpdir("wxhw-bemu")
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    for j = 1, 2 do
      local lines = { "device_id,sn" }
      for i = 1, 200 do lines[#lines + 1] = ("E%dD%04d,E%dSN%04d"):format(j, i, j, i) end
      files.write(("%s/d%d.csv"):format(dir, j), table.concat(lines, "\n") .. "\n")
    end
    local cmd = "cd %s && timeout 30 lua5.4 bin/wxhw provision %s --product Emu --model-name EmuModel " ..
                "--state-dir %s --out %s --no-progress 2>&1; echo rc=$?"
    local p = {}
    for j = 1, 2 do
      p[j] = io.popen(cmd:format(q(ROOT), q(("%s/d%d.csv"):format(dir, j)), q(dir .. "/state"),
                                 q(("%s/m%d.csv"):format(dir, j))))
    end
    local out, rc = {}, {}
    for j = 1, 2 do
      out[j] = p[j]:read("*a"); p[j]:close()
      rc[j] = tonumber(out[j]:match("rc=(%d+)"))
    end
    local both = out[1] .. "\n----\n" .. out[2]
    table.sort(rc)
    assert.same({ 0, 4 }, rc, both)
    assert.matches("another run is using the built%-in emulator of", both)
    assert.matches("200 ok, 0 failed", both)
    -- the refused run's job was not started: its manifest does not exist
    local loser = out[1]:match("rc=4") and 1 or 2
    assert.is_nil(io.open(("%s/m%d.csv"):format(dir, loser)))
  end)
end)
