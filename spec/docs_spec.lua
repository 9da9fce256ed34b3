-- The docs run. Every ```lua block of README.md and docs/*.md that is marked
-- runnable — the line right before its fence is `<!-- runnable -->`, which
-- renders as nothing; `<!-- runnable, continued -->` runs the marked block
-- above it in the same file first — runs in a fresh interpreter of this runtime (the
-- LUA_PATH/LUA_CPATH spec/run sets) against a started emulator and must exit 0.
--
-- PRELUDE runs first; a block may use what it defines:
--   wxhw    require "wxhw"
--   BASE    the emulator's base URL (the WXHW_EMULATOR line; env WXHW_EMULATOR)
--   CREDS   its test credentials, GET BASE/__emulator/credentials (docs/emulator.md)
--   EMU(path)  GET BASE .. path (the emulator's control API), decoded
-- The working directory is a fresh one holding devices.csv (examples/devices.csv);
-- WXHW_TOKEN_STORE puts the default (shm) token store there too.
-- A REPL transcript (lines starting "> ", "$ " lines skipped) runs line by line
-- as the Lua 5.4 REPL does: an expression's values are printed.
-- Blocks that only run inside nginx stay unmarked. WXHW_DOCS_SHOW=1 prints
-- what each block printed.
local emulator = require "support.emulator"
local files = require "support.files"
local q = files.quote

local LUA = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
local ROOT = files.cwd()
local MARK, CONTINUED = "<!-- runnable -->", "<!-- runnable, continued -->"

local PRELUDE = [[
wxhw = require "wxhw"
BASE = assert(os.getenv("WXHW_EMULATOR"), "WXHW_EMULATOR is not set")
function EMU(path) return require("cjson").decode((assert(require("socket.http").request(BASE .. path)))) end
CREDS = EMU("/__emulator/credentials")
]]

-- A transcript line runs as the REPL runs it: first as `return <line>`.
local REPL = [[
local function show(...)
  local n, r = select("#", ...), { ... }
  for i = 1, n do r[i] = tostring(r[i]) end
  if n > 0 then print(table.concat(r, "\t", 1, n)) end
end
local function repl(line)
  local f = load("return " .. line, "=stdin") or assert(load(line, "=stdin"))
  show(f())
end
]]

local function doc_files()
  local list = { "README.md" }
  local p = io.popen("ls docs/*.md")
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  return list
end

-- { file, line, code, marked } for every ```lua block.
local function lua_blocks()
  local blocks = {}
  for _, file in ipairs(doc_files()) do
    local lines, last = {}, nil
    for l in io.lines(file) do lines[#lines + 1] = l end
    local i = 1
    while i <= #lines do
      if lines[i]:match("^%s*```lua%s*$") then
        local j = i + 1
        while lines[j] and not lines[j]:match("^%s*```%s*$") do j = j + 1 end
        local mark = lines[i - 1] or ""
        local b = { file = file, line = i, marked = mark == MARK or mark == CONTINUED,
                    code = table.concat(lines, "\n", i + 1, j - 1) }
        if mark == CONTINUED then
          assert(last, file .. ":" .. i .. ": continues no runnable block")
          b.code = last.code .. "\n" .. b.code
        end
        if b.marked then last = b end
        blocks[#blocks + 1] = b
        i = j
      end
      i = i + 1
    end
  end
  return blocks
end

-- The program a block becomes: the prelude, then the block (or its transcript).
local function program(code)
  if not code:match("^%$ ") and not code:match("\n> ") and not code:match("^> ") then
    return PRELUDE .. "\n" .. code .. "\n"
  end
  local out = { PRELUDE, REPL }
  for line in code:gmatch("[^\n]+") do
    local stmt = line:match("^> (.*)$")
    if stmt then
      stmt = stmt:gsub("%s*%-%-.*$", "") -- the transcript's --> comments
      out[#out + 1] = ("repl(%q)"):format(stmt)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

describe("docs: blocks marked runnable", function()
  local emu, blocks
  setup(function()
    emu = emulator.start{ seed = 3, iot_devices = 150 }
    blocks = lua_blocks()
  end)
  teardown(function() emu.stop() end)

  it("are at least 8, across README.md and docs/", function()
    local n, where = 0, {}
    for _, b in ipairs(blocks) do
      if b.marked then n = n + 1; where[b.file] = true end
    end
    assert.is_true(n >= 8, n .. " blocks are marked runnable")
    assert.is_true(where["README.md"], "README.md has no runnable block")
  end)

  it("each exit 0 against the emulator", function()
    local failures = {}
    for _, b in ipairs(blocks) do
      if b.marked then
        local dir = files.tmpdir("wxhw-docs")
        os.execute("cp " .. q(ROOT .. "/examples/devices.csv") .. " " .. q(dir .. "/devices.csv"))
        files.write(dir .. "/block.lua", program(b.code))
        local p = io.popen("cd " .. q(dir) .. " && WXHW_EMULATOR=" .. emu.base_url ..
          " WXHW_TOKEN_STORE=" .. q(dir .. "/tokens") ..
          " LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;") ..
          " LUA_CPATH=" .. q(ROOT .. "/build/" .. (LUA == "luajit" and "luajit" or "5.4") .. "/?.so;;") ..
          " timeout 60 " .. LUA .. " block.lua 2>&1; echo \"EXIT=$?\"")
        local out = p:read("*a"); p:close()
        local code = tonumber(out:match("EXIT=(%d+)%s*$"))
        if os.getenv("WXHW_DOCS_SHOW") then io.stderr:write(("== %s:%d\n%s"):format(b.file, b.line, out)) end
        if code ~= 0 then
          failures[#failures + 1] = ("%s:%d exited %s:\n%s"):format(b.file, b.line, tostring(code),
            (out:gsub("EXIT=%d+%s*$", "")))
        end
        os.execute("rm -rf " .. q(dir))
      end
    end
    assert.equal("", table.concat(failures, "\n"))
  end)
end)

describe("docs: facts checked against the code", function()
  it("README lists the manifest's columns", function()
    local readme = files.read("README.md"):gsub("\n", " ")
    local cols = readme:match("columns `(line, device_id[^`]*)`")
    assert.equal(table.concat(require("wxhw.provision.manifest").COLUMNS, ", "), cols)
  end)

  it("cite public sources, not files the package does not ship", function()
    -- wechat-api.md, the seeds and the platform-samples README are the project's
    -- notes; "§3.3" (not "RFC 9112 §5.2") points into wechat-api.md
    local p = io.popen("grep -rniE 'wechat-api\\.md|seeds?[ /_]?0[0-9][0-9]|platform-samples README|([a-z,(] |\\()§[0-9]' " ..
      "README.md docs lua examples bin spec --exclude-dir=fixtures --exclude=docs_spec.lua 2>/dev/null")
    local hits = p:read("*a"); p:close()
    assert.equal("", hits)
  end)
end)
