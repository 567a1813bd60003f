-- mpchat.lua: a Wireshark dissector for mpchat (docs/protocol.md) and its LAN discovery (docs/discovery.md).
--
-- Shipped by `chat-lab wireshark` (docs/lab.md). Install: `chat-lab wireshark --install` copies it to your
-- personal Lua plugins folder; or `tshark -X lua_script:mpchat.lua ...` for one run.
--
-- TCP (port 7878, a preference; or Decode As... mpchat): every frame is a 4-byte big-endian length and a
-- msgpack map. Frames are reassembled across TCP segments (tcp_dissect_pdus): one segment may carry many
-- frames, one frame may span many segments. Each frame shows as a tree: its length, its type, then every
-- field of the map (nested maps and arrays as subtrees). A frame that breaks the rules (length 0 or above
-- the limit, msgpack that does not parse, trailing bytes, no string "type") is flagged with an expert
-- "malformed" item and the mpchat.malformed field.
--
-- TLS: with the client's key log (SSLKEYLOGFILE) set as the TLS protocol's "(Pre)-Master-Secret log
-- filename", decode the port as TLS and its payload as mpchat (tshark: -d tcp.port==P,tls -d tls.port==P,mpchat).
--
-- UDP (port 7879, a preference; or Decode As... mpchat-discovery): each datagram is one msgpack map, a
-- beacon, a query or a reply, shown the same way.

local mpchat = Proto("mpchat", "mpchat chat protocol")
local discovery = Proto("mpchat-discovery", "mpchat LAN discovery")

local f_length = ProtoField.uint32("mpchat.length", "Length", base.DEC)
local f_type = ProtoField.string("mpchat.type", "Type")
local f_field = ProtoField.string("mpchat.field", "Field")
local f_malformed = ProtoField.string("mpchat.malformed", "Malformed")
mpchat.fields = { f_length, f_type, f_field, f_malformed }

local d_type = ProtoField.string("mpchat-discovery.type", "Type")
local d_field = ProtoField.string("mpchat-discovery.field", "Field")
local d_malformed = ProtoField.string("mpchat-discovery.malformed", "Malformed")
discovery.fields = { d_type, d_field, d_malformed }

local e_malformed = ProtoExpert.new("mpchat.malformed.expert", "Malformed mpchat frame",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_dmalformed = ProtoExpert.new("mpchat-discovery.malformed.expert", "Malformed mpchat datagram",
    expert.group.MALFORMED, expert.severity.ERROR)
mpchat.experts = { e_malformed }
discovery.experts = { e_dmalformed }

mpchat.prefs.port = Pref.uint("TCP port", 7878, "The mpchat server's TCP port")
mpchat.prefs.max_frame = Pref.uint("Largest frame", 65536, "Frames announcing a longer body are malformed")
discovery.prefs.port = Pref.uint("UDP port", 7879, "The discovery port (beacons and queries)")

local MAX_DEPTH = 32

-- msgpack: parse one value at `offset` (not beyond `limit`). Returns the offset after it, the value as shown
-- (a short string), and for a map the Lua table of its string keys to shown scalar values; or nil and why.
local parse

local function add_item(tree, field, tvb, offset, length, label)
    local item = tree:add(field, tvb(offset, length), label)
    item:set_text(label)
    return item
end

local function need(offset, count, limit)
    return offset + count <= limit
end

-- True if the `count` bytes at `offset` are valid UTF-8 (msgpack strings must be; mpchat refuses others).
local function valid_utf8(tvb, offset, count)
    local i, stop = offset, offset + count
    while i < stop do
        local b = tvb(i, 1):uint()
        local more
        if b < 0x80 then more = 0
        elseif b >= 0xc2 and b <= 0xdf then more = 1
        elseif b >= 0xe0 and b <= 0xef then more = 2
        elseif b >= 0xf0 and b <= 0xf4 then more = 3
        else return false end
        if i + more >= stop then return false end -- the sequence is cut off
        for k = 1, more do
            local c = tvb(i + k, 1):uint()
            if c < 0x80 or c > 0xbf then return false end
        end
        if more == 2 then
            local c = tvb(i + 1, 1):uint()
            if (b == 0xe0 and c < 0xa0) or (b == 0xed and c > 0x9f) then return false end
        elseif more == 3 then
            local c = tvb(i + 1, 1):uint()
            if (b == 0xf0 and c < 0x90) or (b == 0xf4 and c > 0x8f) then return false end
        end
        i = i + 1 + more
    end
    return true
end

parse = function(tvb, offset, limit, tree, field, key, depth)
    if depth > MAX_DEPTH then return nil, "nested too deep" end
    if not need(offset, 1, limit) then return nil, "truncated" end
    local b = tvb(offset, 1):uint()
    local prefix = key and (key .. ": ") or ""
    local function scalar(size, shown)
        add_item(tree, field, tvb, offset, size, prefix .. shown)
        return offset + size, shown
    end
    local function sized(head, count, kind)
        if not need(offset, head + count, limit) then return nil, "truncated " .. kind end
        local shown
        if kind == "str" and not valid_utf8(tvb, offset + head, count) then
            return nil, "a string that is not valid UTF-8"
        end
        if kind == "str" then
            shown = '"' .. tvb(offset + head, count):string(ENC_UTF_8) .. '"'
        else
            shown = "<" .. count .. " bytes>"
        end
        if count == 0 and kind == "str" then shown = '""' end
        add_item(tree, field, tvb, offset, head + count, prefix .. shown)
        return offset + head + count, shown
    end
    local function container(head, count, is_map)
        local start = offset + head
        local label = prefix .. (is_map and ("map of " .. count) or ("array of " .. count))
        local subtree = tree:add(field, tvb(offset, math.min(limit - offset, math.max(1, head))), label)
        subtree:set_text(label)
        local at = start
        local entries = {}
        for i = 1, count do
            local name
            if is_map then
                if not need(at, 1, limit) then return nil, "truncated map" end
                local kb = tvb(at, 1):uint()
                local klen, khead
                if kb >= 0xa0 and kb <= 0xbf then khead, klen = 1, kb - 0xa0
                elseif kb == 0xd9 and need(at, 2, limit) then khead, klen = 2, tvb(at + 1, 1):uint()
                elseif kb == 0xda and need(at, 3, limit) then khead, klen = 3, tvb(at + 1, 2):uint()
                else return nil, "a map key that is not a string" end
                if not need(at, khead + klen, limit) then return nil, "truncated key" end
                if not valid_utf8(tvb, at + khead, klen) then return nil, "a key that is not valid UTF-8" end
                name = tvb(at + khead, klen):string(ENC_UTF_8)
                at = at + khead + klen
            else
                name = "[" .. (i - 1) .. "]"
            end
            local after, shown = parse(tvb, at, limit, subtree, field, name, depth + 1)
            if not after then return nil, shown end
            entries[name] = shown
            at = after
        end
        subtree:set_len(at - offset)
        return at, (is_map and "{...}" or "[...]"), entries
    end
    if b <= 0x7f then return scalar(1, tostring(b)) end
    if b >= 0xe0 then return scalar(1, tostring(b - 0x100)) end
    if b >= 0x80 and b <= 0x8f then return container(1, b - 0x80, true) end
    if b >= 0x90 and b <= 0x9f then return container(1, b - 0x90, false) end
    if b >= 0xa0 and b <= 0xbf then return sized(1, b - 0xa0, "str") end
    if b == 0xc0 then return scalar(1, "nil") end
    if b == 0xc2 then return scalar(1, "false") end
    if b == 0xc3 then return scalar(1, "true") end
    local widths = { [0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8, [0xd0] = 1, [0xd1] = 2, [0xd2] = 4, [0xd3] = 8 }
    if widths[b] then
        local w = widths[b]
        if not need(offset, 1 + w, limit) then return nil, "truncated integer" end
        local r = tvb(offset + 1, w)
        local v
        if b <= 0xcf then v = (w == 8) and r:uint64() or r:uint() else v = (w == 8) and r:int64() or r:int() end
        return scalar(1 + w, tostring(v))
    end
    if b == 0xca or b == 0xcb then
        local w = (b == 0xca) and 4 or 8
        if not need(offset, 1 + w, limit) then return nil, "truncated float" end
        return scalar(1 + w, tostring(tvb(offset + 1, w):float()))
    end
    if b == 0xd9 and need(offset, 2, limit) then return sized(2, tvb(offset + 1, 1):uint(), "str") end
    if b == 0xda and need(offset, 3, limit) then return sized(3, tvb(offset + 1, 2):uint(), "str") end
    if b == 0xdb and need(offset, 5, limit) then return sized(5, tvb(offset + 1, 4):uint(), "str") end
    if b == 0xc4 and need(offset, 2, limit) then return sized(2, tvb(offset + 1, 1):uint(), "bin") end
    if b == 0xc5 and need(offset, 3, limit) then return sized(3, tvb(offset + 1, 2):uint(), "bin") end
    if b == 0xc6 and need(offset, 5, limit) then return sized(5, tvb(offset + 1, 4):uint(), "bin") end
    if b == 0xdc and need(offset, 3, limit) then return container(3, tvb(offset + 1, 2):uint(), false) end
    if b == 0xdd and need(offset, 5, limit) then return container(5, tvb(offset + 1, 4):uint(), false) end
    if b == 0xde and need(offset, 3, limit) then return container(3, tvb(offset + 1, 2):uint(), true) end
    if b == 0xdf and need(offset, 5, limit) then return container(5, tvb(offset + 1, 4):uint(), true) end
    if (b >= 0xc7 and b <= 0xc9) or (b >= 0xd4 and b <= 0xd8) then
        return nil, "a msgpack extension type (refused by mpchat)"
    end
    return nil, string.format("not msgpack (byte 0x%02x)", b)
end

-- One msgpack map body at `offset`..`limit`: the tree, the type; returns the type or nil.
local function body(tvb, offset, limit, pinfo, tree, fields)
    if offset >= limit then
        return nil, "an empty body"
    end
    local first = tvb(offset, 1):uint()
    if not ((first >= 0x80 and first <= 0x8f) or first == 0xde or first == 0xdf) then
        return nil, "the body is not a msgpack map"
    end
    local after, shown, entries = parse(tvb, offset, limit, tree, fields.field, nil, 0)
    if not after then return nil, shown end
    if after ~= limit then return nil, (limit - after) .. " bytes after the map" end
    local kind = entries and entries["type"]
    if not kind or kind:sub(1, 1) ~= '"' then return nil, "no string \"type\" field" end
    kind = kind:sub(2, -2)
    tree:add(fields.type, tvb(offset, limit - offset), kind):set_text("Type: " .. kind)
    return kind
end

local function flag(tree, tvb, fields, expert_field, why)
    tree:add(fields.malformed, tvb(), why):set_text("Malformed: " .. why)
    tree:add_proto_expert_info(expert_field, "Malformed: " .. why)
end

local function append_info(pinfo, text)
    local info = tostring(pinfo.cols.info)
    if info:sub(1, 7) ~= "mpchat " then
        pinfo.cols.info:set("mpchat " .. text)
    else
        pinfo.cols.info:append(", " .. text)
    end
end

local tcp_fields = { field = f_field, type = f_type, malformed = f_malformed }
local udp_fields = { field = d_field, type = d_type, malformed = d_malformed }

local function frame_length(tvb, pinfo, offset)
    local length = tvb(offset, 4):uint()
    if length > mpchat.prefs.max_frame then
        return tvb:len() - offset -- no such frame is coming: take what is here, flagged below
    end
    return 4 + length
end

local function dissect_frame(tvb, pinfo, root)
    pinfo.cols.protocol = "MPCHAT"
    local length = tvb(0, 4):uint()
    local tree = root:add(mpchat, tvb(), "mpchat frame")
    tree:add(f_length, tvb(0, 4))
    if length == 0 or length > mpchat.prefs.max_frame or tvb:len() ~= 4 + length then
        local why = (length == 0) and "a zero-length frame"
            or string.format("a frame of %d bytes, above the limit of %d", length, mpchat.prefs.max_frame)
        flag(tree, tvb, tcp_fields, e_malformed, why)
        append_info(pinfo, "[malformed]")
        return tvb:len()
    end
    local kind, why = body(tvb, 4, 4 + length, pinfo, tree, tcp_fields)
    if kind then
        tree:set_text("mpchat " .. kind .. " (" .. length .. " bytes)")
        append_info(pinfo, kind)
    else
        flag(tree, tvb, tcp_fields, e_malformed, why)
        append_info(pinfo, "[malformed]")
    end
    return tvb:len()
end

function mpchat.dissector(tvb, pinfo, root)
    dissect_tcp_pdus(tvb, root, 4, frame_length, dissect_frame, true)
    return tvb:len()
end

function discovery.dissector(tvb, pinfo, root)
    pinfo.cols.protocol = "MPCHAT-DISCOVERY"
    local tree = root:add(discovery, tvb(), "mpchat discovery datagram")
    local kind, why = body(tvb, 0, tvb:len(), pinfo, tree, udp_fields)
    if kind then
        tree:set_text("mpchat discovery " .. kind .. " (" .. tvb:len() .. " bytes)")
        pinfo.cols.info:set("mpchat discovery " .. kind)
    else
        flag(tree, tvb, udp_fields, e_dmalformed, why)
        pinfo.cols.info:set("mpchat discovery [malformed]")
    end
    return tvb:len()
end

local registered_tcp, registered_udp = 0, 0
local function register_tcp()
    local tcp = DissectorTable.get("tcp.port")
    if registered_tcp ~= 0 then tcp:remove(registered_tcp, mpchat) end
    registered_tcp = mpchat.prefs.port
    if registered_tcp ~= 0 then tcp:add(registered_tcp, mpchat) end
end
local function register_udp()
    local udp = DissectorTable.get("udp.port")
    if registered_udp ~= 0 then udp:remove(registered_udp, discovery) end
    registered_udp = discovery.prefs.port
    if registered_udp ~= 0 then udp:add(registered_udp, discovery) end
end
mpchat.prefs_changed = register_tcp
discovery.prefs_changed = register_udp
register_tcp()
register_udp()
-- Inside TLS (decrypted with a key log, docs/lab.md): Decode As... TLS port -> mpchat.
DissectorTable.get("tls.port"):add_for_decode_as(mpchat)
