package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Bytes encodes the compiled filter (its flags, then each instruction as
// code, jt, jf, k, little endian) so that it can be cached and loaded
// later without compiling the profile again.
func (f *Filter) Bytes() []byte {
	out := make([]byte, 8, 8+8*len(f.prog))
	binary.LittleEndian.PutUint64(out, uint64(f.flags))
	for _, in := range f.prog {
		var b [8]byte
		binary.LittleEndian.PutUint16(b[0:], in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[4:], in.K)
		out = append(out, b[:]...)
	}
	return out
}

// FilterFromBytes decodes a filter encoded by Bytes.
func FilterFromBytes(data []byte) (*Filter, error) {
	if len(data) < 16 || len(data)%8 != 0 {
		return nil, errors.New("seccomp: encoded filter has a bad length")
	}
	n := len(data)/8 - 1
	if n > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: encoded filter has %d instructions, more than %d", n, bpfMaxInsns)
	}
	f := &Filter{flags: uintptr(binary.LittleEndian.Uint64(data)), prog: make([]unix.SockFilter, n)}
	for i := range f.prog {
		b := data[8+8*i:]
		f.prog[i] = unix.SockFilter{
			Code: binary.LittleEndian.Uint16(b[0:]), Jt: b[2], Jf: b[3],
			K: binary.LittleEndian.Uint32(b[4:]),
		}
	}
	return f, nil
}
