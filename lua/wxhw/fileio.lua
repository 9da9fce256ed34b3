--- Files and processes without a shell: the primitive façade over the core's
-- fileio and proc tables (csrc/fileio.c, csrc/proc.c). Expected failures
-- return nil, err (a wxhw.Error of kind "io" with the system's errno text);
-- misuse (a wrong argument type, an unknown signal) raises.
--
-- Files:
--   fileio.fsync(file)              flush and put a file's data on disk
--   fileio.fsync_dir(path)          make a create or rename in it durable
--   fileio.truncate(file, size)     cut to size, position at the new end
--   fileio.size(file)               bytes on disk after a flush
--   fileio.lock(file)               exclusive flock without waiting: true | false (held elsewhere)
--   fileio.mkdir_p(path [, mode])   mkdir -p (mode "777" before the umask)
--   fileio.chmod(path, mode)        mode as octal digits ("600") or a number
--   fileio.create_private(path)     empty file with mode 0600 whatever the umask
--   fileio.getcwd()                 the working directory
--   fileio.absolute(path)           path made absolute against the working directory
--   fileio.isatty(fd | file)        whether it is a terminal
--   fileio.read_file(path)          the whole file | nil, err
--   fileio.write_atomic(path, data [, private])  write beside, fsync, rename over
--   fileio.seen(bits [, k])         a Bloom filter (csrc/seen.c) for the keys met
--                                   while streaming a file too large for a table:
--                                   seen:add(key) is true when it may have been met
--
-- Processes (fileio.proc):
--   proc.spawn(argv [, opts])       pid; argv[1] looked up on PATH. opts: stdin,
--                                   stdout, stderr = nil (inherit) | "null" | path,
--                                   stderr = "stdout" (2>&1); append = true: output paths
--                                   as >> (not truncated); env = { NAME = "v" | false }
--                                   over ours; background = true: ignores Ctrl-C (SIGINT,
--                                   SIGQUIT) as a shell's `cmd &` does; close_fds = true:
--                                   the child keeps only 0, 1 and 2
--   proc.wait(pid [, nohang])       "exit", code | "signal", signo | false (nohang, running)
--   proc.kill(pid [, sig])          sig "TERM" (default), "KILL", "INT"... or a number; 0 probes
--   proc.alive(pid)                 whether it runs (a child of ours that exited is reaped)
--   proc.pid()  proc.nproc()        our pid; CPUs online
local core = require "wxhw.core"
local errors = require "wxhw.errors"

local M = {}
for name, f in pairs(core.fileio) do M[name] = f end
M.proc = core.proc
M.seen = core.seen.new

local getcwd = core.fileio.getcwd

--- path itself when absolute, else joined to the working directory
-- (nil, err when that cannot be read).
function M.absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd, err = getcwd()
  if not cwd then return nil, err end
  return (cwd:gsub("/$", "")) .. "/" .. path
end

function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return errors.fail("io", err) end -- io.open's message names the path
  local s = f:read("*a")
  f:close()
  return s
end

--- Replaces the file at path with data so that a crash leaves either the old
-- or the new content, never half: written to path .. ".tmp", flushed to disk,
-- renamed over, the directory synced. private: the file is 0600 from its
-- creation on (for keys). true | nil, err.
function M.write_atomic(path, data, private)
  local tmp = path .. ".tmp"
  if private then
    local ok, perr = M.create_private(tmp)
    if not ok then return nil, perr end
  end
  local f, err = io.open(tmp, "wb")
  if not f then return errors.fail("io", "cannot write " .. tmp .. ": " .. tostring(err)) end
  f:write(data)
  local ok, serr = M.fsync(f)
  f:close()
  if not ok then os.remove(tmp); return nil, serr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); return errors.fail("io", "cannot rename " .. tmp .. ": " .. tostring(rerr)) end
  M.fsync_dir(path:match("^(.*)/[^/]*$") or ".")
  return true
end

return M
