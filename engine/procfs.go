package engine

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// pidStartTime reads a process's start time (clock ticks since boot) from
// /proc, to tell a pid from a later process that reused the number.
func pidStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: skip past the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := bytes.Fields(data[i+1:])
	// starttime is field 22 overall; fields here start at field 3.
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// pidAlive tells whether pid still names the process that started at start.
func pidAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got, err := pidStartTime(pid)
	if err != nil {
		return false
	}
	// A zombie still has its stat entry; treat it as gone.
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) && data[i+2] == 'Z' {
		return false
	}
	return start == 0 || got == start
}
