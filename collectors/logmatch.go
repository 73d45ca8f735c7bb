package collectors

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// The expression compilers of the line pipeline. It runs once per log
// line, so every expression gets a literal prefilter (derived with
// regexp/syntax) so that Go's regexp engine only runs on lines that can
// match at all; the common shape of log-format expressions gets a linear
// matcher without backtracking (loglinear.go).

// matcher is a regexp with a literal prefilter: lits lists literals of
// which at least one occurs in every match. When exact is set the
// expression is nothing but those literals, and the prefilter decides
// alone. The literals are searched for by the source's litSet, one pass
// over the line for all its matchers; set has a bit for each of this
// matcher's literals there, and is 0 when the matcher is not prefiltered.
type matcher struct {
	re    *regexp.Regexp
	lits  []literal
	exact bool
	set   uint64
}

type literal struct {
	b    []byte
	fold bool // ASCII letters match either case (b holds them lowercased)
}

// byteRank orders bytes by how common they are in log text, most common
// first: keying each literal on its rarest pair of bytes means the scan
// stops to verify a literal at far fewer places than keying it on its
// first letters ("error" starts with the most common letter of English).
const byteRank = " eE0123456789taoinsrhldcumfpgwybvkxjqzTAOINSRHLDCUMFPGWYBVKXJQZ-./:,[]\"=_'"

func newMatcher(re *regexp.Regexp) *matcher {
	m := &matcher{re: re}
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return m
	}
	parsed = parsed.Simplify()
	lits, ok := requiredLiterals(parsed)
	if !ok {
		return m
	}
	m.lits = lits
	m.exact = onlyLiterals(parsed)
	return m
}

// requiredLiterals returns literals of which at least one occurs in every
// match of re, or false when no such set is known.
func requiredLiterals(re *syntax.Regexp) ([]literal, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		s := string(re.Rune)
		if s == "" {
			return nil, false
		}
		if fold {
			// Only ASCII folds are prefiltered. The Unicode folds of
			// ASCII letters (the Kelvin sign for k, the long s) need a
			// non-ASCII line, for which the prefilter is not used.
			for _, r := range re.Rune {
				if r >= utf8.RuneSelf {
					return nil, false
				}
			}
			s = strings.ToLower(s)
		}
		return []literal{{b: []byte(s), fold: fold}}, true
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []literal
		bestScore := 0
		for _, s := range re.Sub {
			l, ok := requiredLiterals(s)
			if !ok {
				continue
			}
			// The shortest literal of a set decides how selective it is.
			score := math.MaxInt
			for _, x := range l {
				score = min(score, len(x.b))
			}
			score = score*8 - len(l)
			if score > bestScore {
				best, bestScore = l, score
			}
		}
		return best, best != nil
	case syntax.OpAlternate:
		var out []literal
		for _, s := range re.Sub {
			l, ok := requiredLiterals(s)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, len(out) > 0
	}
	return nil, false
}

// onlyLiterals reports whether re matches exactly the lines containing one
// of its literals: a literal or an alternation of literals, unanchored.
func onlyLiterals(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		_, ok := requiredLiterals(re)
		return ok
	case syntax.OpCapture:
		return onlyLiterals(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !onlyLiterals(s) {
				return false
			}
		}
		return true
	}
	return false
}

// match reports whether line matches. found is the line's litSet.scan
// result; ok is false when the prefilter cannot be trusted for the line
// (it holds a byte above 0x7f, where ASCII case folding is not the whole
// story).
func (m *matcher) match(line []byte, found uint64, ok bool) bool {
	if ok && m.set != 0 {
		if found&m.set == 0 {
			return false
		}
		if m.exact {
			return true
		}
	}
	return m.re.Match(line)
}

// passes is the prefilter alone, for expressions whose groups are needed.
func (m *matcher) passes(found uint64, ok bool) bool {
	return !ok || m.set == 0 || found&m.set != 0
}

// maxSetLits is how many distinct literals a source's litSet holds: one
// bit each in a word. A matcher whose literals do not fit is not
// prefiltered (Go's regexp decides every line), which costs time only.
const maxSetLits = 64

// litSet finds which of a source's literals occur in a line in one pass.
// Before it, each pattern searched the lowercased line for each of its
// literals: every line was lowercased, then read once per literal, and
// the search stopped at every common letter that started or keyed one.
//
// Keys are pairs of adjacent bytes ORed with 0x20 (so both cases of a
// letter give one key; other bytes may collide, which verification sorts
// out). A literal of three bytes or more is keyed on two overlapping pairs
// of its rarest three bytes: one of them starts at an even offset of the
// line wherever the literal occurs, so only the pairs at even offsets need
// looking up: four loads from a byte table for eight bytes of the line,
// one branch, and only the rare words with a key are verified. When some
// literal has two bytes, its one pair may start at an odd offset, and
// every offset is looked up (seven pairs for seven bytes). One-byte
// literals are searched with bytes.IndexByte.
//
// The table has a byte per key, 64 KiB of which ASCII lines touch 8 KiB
// (both bytes have bit 5 set and bit 7 clear): one load a pair, where a
// bit table would need two more operations.
type litSet struct {
	lits []setLit
	// pairs holds, for a pair key, 0 when no literal is keyed on it, else
	// 1 + the index in keyed of the set of literals that are.
	pairs *[1 << 16]uint8
	keyed []uint64
	short uint64 // the one-byte literals
	odd   bool   // some literal has two bytes: look up every offset
}

// setLit is a literal prepared for verification eight bytes at a time:
// a byte of the line matches the literal's byte c when (byte|fold) == c,
// fold being 0x20 at the letters of a case-folded literal, 0 elsewhere.
type setLit struct {
	b, fold []byte
	// The literal is keyed on the pair at b[pos] and, when it has three
	// bytes or more, on the pair at b[pos+1].
	pos       int
	key, key2 uint16
	// The literal as one little-endian word, when it is 8 bytes or less.
	word, foldWord, maskWord uint64
}

func pairKey(b0, b1 byte) uint16 { return uint16(b0|0x20) | uint16(b1|0x20)<<8 }

// add registers m's literals (shared with equal literals of earlier
// matchers) and sets m.set, or leaves m unfiltered when the set is full.
func (s *litSet) add(m *matcher) {
	var set uint64
	var added []setLit
	for _, l := range m.lits {
		fold := make([]byte, len(l.b))
		for i, c := range l.b {
			if l.fold && 'a' <= c && c <= 'z' {
				fold[i] = 0x20
			}
		}
		same := func(x setLit) bool { return string(x.b) == string(l.b) && string(x.fold) == string(fold) }
		id := slices.IndexFunc(s.lits, same)
		if id < 0 {
			if j := slices.IndexFunc(added, same); j >= 0 {
				id = len(s.lits) + j
			}
		}
		if id < 0 {
			id = len(s.lits) + len(added)
			if id >= maxSetLits {
				m.set = 0
				return
			}
			sl := setLit{b: l.b, fold: fold, pos: rarestRun(l.b)}
			if len(l.b) >= 2 {
				sl.key = pairKey(l.b[sl.pos], l.b[sl.pos+1])
			}
			if len(l.b) >= 3 {
				sl.key2 = pairKey(l.b[sl.pos+1], l.b[sl.pos+2])
			}
			if len(l.b) <= 8 {
				var buf, fb [8]byte
				copy(buf[:], l.b)
				copy(fb[:], fold)
				sl.word = binary.LittleEndian.Uint64(buf[:])
				sl.foldWord = binary.LittleEndian.Uint64(fb[:])
				sl.maskWord = math.MaxUint64 >> (64 - 8*len(l.b))
			}
			added = append(added, sl)
		}
		set |= 1 << id
	}
	for _, sl := range added {
		bit := uint64(1) << len(s.lits)
		s.lits = append(s.lits, sl)
		if len(sl.b) == 1 {
			s.short |= bit
			continue
		}
		if s.pairs == nil {
			s.pairs = new([1 << 16]uint8)
		}
		s.keyOn(sl.key, bit)
		if len(sl.b) >= 3 {
			s.keyOn(sl.key2, bit)
		} else {
			s.odd = true
		}
	}
	m.set = set
}

// keyOn adds the literal bit to the literals keyed on pair key k. There
// are at most 2*maxSetLits keys, so an index fits the table's byte.
func (s *litSet) keyOn(k uint16, bit uint64) {
	if s.pairs[k] == 0 {
		s.keyed = append(s.keyed, 0)
		s.pairs[k] = uint8(len(s.keyed))
	}
	s.keyed[s.pairs[k]-1] |= bit
}

// rarestRun returns where the three adjacent bytes of b that are least
// common in log text (byteRank) start; for a literal of two bytes or one,
// 0.
func rarestRun(b []byte) int {
	rank := func(c byte) int {
		if r := strings.IndexByte(byteRank, c); r >= 0 {
			return r
		}
		return len(byteRank)
	}
	best, bestRank := 0, -1
	for i := 0; i+2 < len(b); i++ {
		// Both pairs are looked for: the commoner one decides how often
		// the scan stops, and its rarer byte decides that.
		p1 := max(rank(b[i]), rank(b[i+1]))*256 + min(rank(b[i]), rank(b[i+1]))
		p2 := max(rank(b[i+1]), rank(b[i+2]))*256 + min(rank(b[i+1]), rank(b[i+2]))
		if r := min(p1, p2); r > bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

// scan returns the set of literals that occur in line (bit i for literal
// i), and false when line is not pure ASCII (the prefilter is then not
// used). The ASCII check rides along: the words the scan reads anyway are
// ORed together, so the line is read once.
func (s *litSet) scan(line []byte) (uint64, bool) {
	var found uint64
	if s.short != 0 {
		found = s.scanShort(line)
	}
	if s.pairs == nil {
		return found, isASCII(line)
	}
	const fold = 0x2020202020202020
	t := s.pairs
	var seen uint64 // every byte read, ORed: bit 7 of a byte means not ASCII
	i := 0
	if s.odd {
		// Pairs at i..i+6, all inside the word at i.
		for ; i+8 <= len(line); i += 7 {
			raw := binary.LittleEndian.Uint64(line[i : i+8])
			seen |= raw
			w := raw | fold
			if t[uint16(w)]|t[uint16(w>>8)]|t[uint16(w>>16)]|t[uint16(w>>24)]|
				t[uint16(w>>32)]|t[uint16(w>>40)]|t[uint16(w>>48)] == 0 {
				continue
			}
			for j := 0; j < 7; j++ {
				if k := uint16(w >> (8 * j)); t[k] != 0 {
					found = s.verify(line, i+j, k, t[k], found)
				}
			}
		}
		for ; i < len(line); i++ {
			seen |= uint64(line[i])
			if i+1 < len(line) {
				if k := pairKey(line[i], line[i+1]); t[k] != 0 {
					found = s.verify(line, i, k, t[k], found)
				}
			}
		}
		return found, seen&hiBits == 0
	}
	// Pairs at i, i+2, ..., i+14: sixteen bytes a turn, and one branch
	// for the (rare) turn with a key. The turn reads b, which shrinks,
	// and keeps nothing it does not need across it, so that the compiler
	// keeps it in registers.
	for b := line; len(b) >= 16; b = b[16:] {
		raw0 := binary.LittleEndian.Uint64(b[:8])
		raw1 := binary.LittleEndian.Uint64(b[8:16])
		seen |= raw0 | raw1
		// Halves of words, so that the top pair of each needs no mask.
		const fold32 = 0x20202020
		a, b0 := uint32(raw0)|fold32, uint32(raw0>>32)|fold32
		c, d := uint32(raw1)|fold32, uint32(raw1>>32)|fold32
		h0 := t[uint16(a)] | t[a>>16] | t[uint16(b0)] | t[b0>>16]
		h1 := t[uint16(c)] | t[c>>16] | t[uint16(d)] | t[d>>16]
		if h0|h1 != 0 {
			i := len(line) - len(b)
			if h0 != 0 {
				found = s.verifyWord(line, i, found)
			}
			if h1 != 0 {
				found = s.verifyWord(line, i+8, found)
			}
		}
	}
	i = len(line) &^ 15
	if i+8 <= len(line) {
		raw := binary.LittleEndian.Uint64(line[i : i+8])
		seen |= raw
		const fold32 = 0x20202020
		if a, b := uint32(raw)|fold32, uint32(raw>>32)|fold32; t[uint16(a)]|t[a>>16]|t[uint16(b)]|t[b>>16] != 0 {
			found = s.verifyWord(line, i, found)
		}
		i += 8
	}
	if i < len(line) && len(line) >= 8 {
		// The last bytes: the line's last word, read again in part,
		// holds them; its pairs at even offsets of the line start at
		// its even bytes when it starts at an even offset, else at its
		// odd ones (shifted down by a byte: the top pair then pairs
		// the last byte with a zero, which verification rejects). One
		// word instead of a loop whose end the predictor misses.
		last := len(line) - 8
		raw := binary.LittleEndian.Uint64(line[last:])
		seen |= raw
		w := (raw | 0x2020202020202020) >> (8 * (last & 1))
		if t[uint16(w)]|t[uint16(w>>16)]|t[uint16(w>>32)]|t[uint16(w>>48)] != 0 {
			found = s.verifyPairs(line, last+last&1, w, found)
		}
		return found, seen&hiBits == 0
	}
	for ; i < len(line); i++ {
		seen |= uint64(line[i])
		if i+1 < len(line) && i%2 == 0 {
			if k := pairKey(line[i], line[i+1]); t[k] != 0 {
				found = s.verify(line, i, k, t[k], found)
			}
		}
	}
	return found, seen&hiBits == 0
}

// hiBits has the top bit of every byte of a word.
const hiBits = 0x8080808080808080

// scanShort finds the one-byte literals.
func (s *litSet) scanShort(line []byte) uint64 {
	var found uint64
	for k := s.short; k != 0; k &= k - 1 {
		id := bits.TrailingZeros64(k)
		if l := &s.lits[id]; bytes.IndexByte(line, l.b[0]) >= 0 || l.fold[0] != 0 && bytes.IndexByte(line, l.b[0]-0x20) >= 0 {
			found |= 1 << id
		}
	}
	return found
}

// verifyWord verifies the literals keyed on the pairs at even offsets of
// the word at line[i].
func (s *litSet) verifyWord(line []byte, i int, found uint64) uint64 {
	const fold = 0x2020202020202020
	return s.verifyPairs(line, i, binary.LittleEndian.Uint64(line[i:i+8])|fold, found)
}

// verifyPairs verifies the literals keyed on the pairs of the folded word
// w at its even offsets, w's first byte being line[i].
func (s *litSet) verifyPairs(line []byte, i int, w, found uint64) uint64 {
	t := s.pairs
	if k := uint16(w); t[k] != 0 {
		found = s.verify(line, i, k, t[k], found)
	}
	if k := uint16(w >> 16); t[k] != 0 {
		found = s.verify(line, i+2, k, t[k], found)
	}
	if k := uint16(w >> 32); t[k] != 0 {
		found = s.verify(line, i+4, k, t[k], found)
	}
	if k := uint16(w >> 48); t[k] != 0 {
		found = s.verify(line, i+6, k, t[k], found)
	}
	return found
}

// verify adds to found the literals keyed on pair key k (idx is its
// pairs entry) that occur with that pair at line[i].
func (s *litSet) verify(line []byte, i int, k uint16, idx uint8, found uint64) uint64 {
	for m := s.keyed[idx-1] &^ found; m != 0; m &= m - 1 {
		id := bits.TrailingZeros64(m)
		l := &s.lits[id]
		if l.key == k && l.at(line, i-l.pos) || len(l.b) >= 3 && l.key2 == k && l.at(line, i-l.pos-1) {
			found |= 1 << id
		}
	}
	return found
}

// at reports whether the literal occurs in line at start.
func (l *setLit) at(line []byte, start int) bool {
	if start < 0 || start+len(l.b) > len(line) {
		return false
	}
	h := line[start:]
	if len(h) >= 8 && l.maskWord != 0 {
		return (binary.LittleEndian.Uint64(h)|l.foldWord)&l.maskWord == l.word
	}
	for i, c := range l.b {
		if h[i]|l.fold[i] != c {
			return false
		}
	}
	return true
}

// isASCII reports whether b holds no byte above 0x7f, eight bytes at a time.
func isASCII(b []byte) bool {
	const hi = hiBits
	var any uint64
	i := 0
	for ; i+8 <= len(b); i += 8 {
		any |= binary.LittleEndian.Uint64(b[i:])
	}
	for ; i < len(b); i++ {
		any |= uint64(b[i])
	}
	return any&hi == 0
}
