package netns

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// berth's nftables: one table (family ip) per network, named after its
// bridge, holding all of the network's rules; removing the network
// removes the table, and nothing of the host's is touched.
//
//	table ip NAME {
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr SUBNET oifname != NAME masquerade }       # not --internal
//	  chain forward { type filter hook forward priority filter;
//	    oifname NAME ct status dnat accept                 # published ports; not --internal
//	    iifname NAME oifname != NAME oifname "berth*"|"bth*" drop  # other berth networks
//	    iifname NAME oifname != NAME drop                  # --internal only
//	    oifname NAME iifname != NAME drop }                # --internal only
//	}
//
// The port-publishing code adds its chains (DNAT) to the same table;
// berth's own two chains are flushed and filled again when the bridge is
// made again, the table itself is never flushed or recreated.

// ipsDstNAT is conntrack's IPS_DST_NAT status bit.
const ipsDstNAT = 1 << 5

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

// setupTable makes the network's table, or brings berth's own two chains
// of an existing one up to date. Other chains of the table (the port
// publishing code's) are left alone: the table is never flushed or
// recreated.
func setupTable(n *Network) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: n.Table()})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	c.FlushChain(post)
	c.FlushChain(fwd)
	sn := n.IPNet()
	br := ifname(n.Bridge)
	meta := func(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }
	eq := func(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
	ne := func(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: data} }
	if !n.Internal {
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: sn.Mask, Xor: []byte{0, 0, 0, 0}},
			eq(sn.IP.To4()),
			meta(expr.MetaKeyOIFNAME), ne(br),
			&expr.Masq{},
		}})
	}
	if !n.Internal {
		// Published ports (DNAT'ed towards the bridge) are reachable,
		// also from other berth networks.
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			meta(expr.MetaKeyOIFNAME), eq(br),
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
			ne(binaryutil.NativeEndian.PutUint32(0)),
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	for _, prefix := range []string{"berth", "bth"} {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			meta(expr.MetaKeyIIFNAME), eq(br),
			meta(expr.MetaKeyOIFNAME), ne(br),
			meta(expr.MetaKeyOIFNAME), eq([]byte(prefix)),
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if n.Internal {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			meta(expr.MetaKeyIIFNAME), eq(br), meta(expr.MetaKeyOIFNAME), ne(br),
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			meta(expr.MetaKeyOIFNAME), eq(br), meta(expr.MetaKeyIIFNAME), ne(br),
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("creating nftables table %s: %w", n.Table(), err)
	}
	return nil
}

// deleteTable removes berth's table of a network if it exists.
func deleteTable(name string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name {
			c.DelTable(t)
			if err := c.Flush(); err != nil && err != unix.ENOENT {
				return fmt.Errorf("removing nftables table %s: %w", name, err)
			}
		}
	}
	return nil
}

// TableExists tells whether berth's table of that name exists.
func TableExists(name string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	t, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4)
	return err == nil && t != nil
}
