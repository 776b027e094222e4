-- wrk script for the ingest benchmark: POST the pre-signed webhooks of a file, one per request, in order.
-- Each line of the file is "<token>\t<body>". Usage: wrk -t1 -c32 -d8s -s ingest.lua URL -- FILE
local requests = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local tab = string.find(line, "\t", 1, true)
    local headers = {["Authorization"] = string.sub(line, 1, tab - 1), ["Content-Type"] = "application/json"}
    requests[#requests + 1] = wrk.format("POST", nil, headers, string.sub(line, tab + 1))
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
