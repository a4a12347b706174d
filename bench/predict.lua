-- wrk script: POST the body in $BODY_FILE (JSON) to the path in $WRK_PATH (default /predict).
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.path = os.getenv("WRK_PATH") or "/predict"
wrk.headers["Content-Type"] = "application/json"
