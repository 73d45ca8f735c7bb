package collectors

import (
	"bytes"
	"encoding/binary"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The expression compilers of the line pipeline. It runs once per log
// line, so every expression gets a literal prefilter (derived with
// regexp/syntax) so that Go's regexp engine only runs on lines that can
// match at all, and the common shape of log-format expressions a linear
// matcher without backtracking.

// matcher is a regexp with a literal prefilter: lit lists literals of
// which at least one occurs in every match. When exact is set the
// expression is nothing but those literals, and the prefilter decides
// alone.
type matcher struct {
	re    *regexp.Regexp
	lits  []literal
	exact bool
}

type literal struct {
	b    []byte
	fold bool // compare with the ASCII-lowercased line
	rare int  // index in b of its rarest byte, searched for first
}

// byteRank orders bytes by how common they are in log text, most common
// first: searching for a literal's rarest byte with bytes.IndexByte (SIMD)
// and verifying around it wastes far fewer checks than starting from its
// first letter ("error" starts with the most common letter of English).
const byteRank = " eE0123456789taoinsrhldcumfpgwybvkxjqzTAOINSRHLDCUMFPGWYBVKXJQZ-./:,[]\"=_'"

func rarestByte(b []byte) int {
	best, bestRank := 0, -1
	for i, c := range b {
		r := strings.IndexByte(byteRank, c)
		if r < 0 {
			r = len(byteRank) // not listed: rarer than anything listed
		}
		if r > bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

// in reports whether the literal occurs in hay.
func (l *literal) in(hay []byte) bool {
	n, r := len(l.b), l.rare
	c := l.b[r]
	for i := r; i < len(hay); {
		j := bytes.IndexByte(hay[i:], c)
		if j < 0 {
			return false
		}
		start := i + j - r
		if start+n > len(hay) {
			return false
		}
		if string(hay[start:start+n]) == string(l.b) {
			return true
		}
		i += j + 1
	}
	return false
}

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
		return []literal{{b: []byte(s), fold: fold, rare: rarestByte([]byte(s))}}, true
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

// match reports whether line matches. lower is line lowercased (ASCII) and
// ascii reports that line holds no byte above 0x7f; the prefilter is only
// trusted for ASCII lines, where ASCII case folding is the whole story.
func (m *matcher) match(line, lower []byte, ascii bool) bool {
	if ascii && m.lits != nil {
		found := false
		for i := range m.lits {
			l := &m.lits[i]
			hay := line
			if l.fold {
				hay = lower
			}
			if l.in(hay) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
		if m.exact {
			return true
		}
	}
	return m.re.Match(line)
}

// passes is the prefilter alone, for expressions whose groups are needed.
func (m *matcher) passes(line, lower []byte, ascii bool) bool {
	if !ascii || m.lits == nil {
		return true
	}
	for i := range m.lits {
		l := &m.lits[i]
		hay := line
		if l.fold {
			hay = lower
		}
		if l.in(hay) {
			return true
		}
	}
	return false
}

// lowerASCII appends line lowercased (ASCII letters only) to dst and reports
// whether line is pure ASCII. It works eight bytes at a time.
func lowerASCII(dst, line []byte) ([]byte, bool) {
	n := len(line)
	dst = slices.Grow(dst[:0], n)[:n]
	const hi = 0x8080808080808080
	var any uint64
	i := 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(line[i:])
		any |= w
		b := w &^ hi
		ge := b + 0x3f3f3f3f3f3f3f3f // bit 7 set where byte >= 'A'
		gt := b + 0x2525252525252525 // bit 7 set where byte > 'Z'
		mask := ge &^ gt &^ w & hi
		binary.LittleEndian.PutUint64(dst[i:], w|mask>>2)
	}
	for ; i < n; i++ {
		c := line[i]
		any |= uint64(c)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst, any&hi == 0
}

// linear is a fast matcher for the common shape of log-format expressions:
// anchored at the start, a sequence of literals and ASCII character classes
// with repeats, where every variable-length part is followed by something
// it cannot contain (`\S+ `, `[^"]*"`, `\d+ `). For such expressions the
// greedy choice is the only one, so one pass without backtracking finds
// exactly the match (and submatches) Go's regexp would, several times
// faster. Other expressions return nil from compileLinear and use regexp.
type linear struct {
	elems []linElem
	ncap  int
}

type linElem struct {
	kind     byte // 'l' literal, 'c' class, '(' capture start, ')' capture end, '$' end of text
	lit      []byte
	class    *[256]bool
	min, max int // repeats of class; max < 0 is unbounded
	cap      int
	// stop is the one byte outside class, or -1: a run of such a class
	// ends at the next stop byte, which bytes.IndexByte finds with SIMD.
	stop int
}

func compileLinear(re *regexp.Regexp) *linear {
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	parsed = parsed.Simplify()
	if parsed.Op != syntax.OpConcat || len(parsed.Sub) == 0 || parsed.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	l := &linear{ncap: re.NumSubexp() + 1}
	for _, s := range parsed.Sub[1:] {
		if !l.add(s) {
			return nil
		}
	}
	// Every variable part must be followed by something disjoint from it.
	for i, e := range l.elems {
		if e.kind != 'c' || e.min == e.max {
			continue
		}
		j := i + 1
		for j < len(l.elems) && (l.elems[j].kind == '(' || l.elems[j].kind == ')') {
			j++
		}
		if j == len(l.elems) {
			continue // runs to the end of the line: greedy takes it all
		}
		n := l.elems[j]
		switch n.kind {
		case '$':
		case 'l':
			if e.class[n.lit[0]] {
				return nil
			}
		case 'c':
			if n.min < 1 {
				return nil
			}
			for b := 0; b < 256; b++ {
				if e.class[b] && n.class[b] {
					return nil
				}
			}
		}
	}
	return l
}

func (l *linear) add(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return false
		}
		var b []byte
		for _, r := range re.Rune {
			b = utf8.AppendRune(b, r)
		}
		l.elems = append(l.elems, linElem{kind: 'l', lit: b})
	case syntax.OpCharClass, syntax.OpAnyCharNotNL:
		return l.addClass(re, 1, 1)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		lo, hi := 0, -1
		if re.Op == syntax.OpPlus {
			lo = 1
		}
		if re.Op == syntax.OpQuest {
			hi = 1
		}
		if re.Flags&syntax.NonGreedy != 0 {
			return false
		}
		return l.addClass(re.Sub[0], lo, hi)
	case syntax.OpRepeat:
		if re.Flags&syntax.NonGreedy != 0 {
			return false
		}
		return l.addClass(re.Sub[0], re.Min, re.Max)
	case syntax.OpCapture:
		l.elems = append(l.elems, linElem{kind: '(', cap: re.Cap})
		if !l.add(re.Sub[0]) {
			return false
		}
		l.elems = append(l.elems, linElem{kind: ')', cap: re.Cap})
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !l.add(s) {
				return false
			}
		}
	case syntax.OpEndText:
		l.elems = append(l.elems, linElem{kind: '$'})
	default:
		return false
	}
	return true
}

// addClass adds a class repeated lo..hi times. Only classes that are
// decided by single bytes qualify: ASCII ranges, or the negation of ASCII
// ranges (\S, [^"], .), since every byte of a multi-byte character (and
// every invalid byte, read as U+FFFD) lies outside ASCII.
func (l *linear) addClass(re *syntax.Regexp, lo, hi int) bool {
	var set [256]bool
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) != 1 || re.Rune[0] >= utf8.RuneSelf || re.Flags&syntax.FoldCase != 0 {
			return false
		}
		set[re.Rune[0]] = true
	case syntax.OpAnyCharNotNL:
		if hi >= 0 || lo > 1 {
			return false
		}
		for b := range set {
			set[b] = b != '\n'
		}
	case syntax.OpCharClass:
		r := re.Rune
		// Negated ASCII class: the last range runs to the top of Unicode.
		neg := len(r) >= 2 && r[len(r)-1] == unicode.MaxRune && r[len(r)-2] < utf8.RuneSelf
		for i := 0; i+1 < len(r); i += 2 {
			lo, hi := r[i], r[i+1]
			if hi >= utf8.RuneSelf && !(neg && i+2 == len(r)) {
				return false
			}
			for c := lo; c <= hi && c < 256; c++ {
				set[c] = true
			}
		}
		if neg {
			// Bytes and characters only count alike for "one or more"
			// and "any number": a multi-byte character is several bytes.
			if hi >= 0 || lo > 1 {
				return false
			}
			for b := 0x80; b < 256; b++ {
				set[b] = true
			}
		}
	default:
		return false
	}
	stop, outside := -1, 0
	for b := range set {
		if !set[b] {
			stop = b
			outside++
		}
	}
	if outside != 1 {
		stop = -1
	}
	l.elems = append(l.elems, linElem{kind: 'c', class: &set, min: lo, max: hi, stop: stop})
	return true
}

// match returns the submatch positions as regexp.FindSubmatchIndex does,
// appended to dst, or nil.
func (l *linear) match(line []byte, dst []int) []int {
	n := 2 * l.ncap
	dst = slices.Grow(dst[:0], n)[:n]
	for i := range dst {
		dst[i] = -1
	}
	pos := 0
	for i := range l.elems {
		e := &l.elems[i]
		switch e.kind {
		case 'l':
			if !bytes.HasPrefix(line[pos:], e.lit) {
				return nil
			}
			pos += len(e.lit)
		case 'c':
			k := 0
			if e.stop >= 0 && e.max < 0 {
				if k = bytes.IndexByte(line[pos:], byte(e.stop)); k < 0 {
					k = len(line) - pos
				}
			} else {
				for pos+k < len(line) && (e.max < 0 || k < e.max) && e.class[line[pos+k]] {
					k++
				}
			}
			if k < e.min {
				return nil
			}
			pos += k
		case '(':
			dst[2*e.cap] = pos
		case ')':
			dst[2*e.cap+1] = pos
		case '$':
			if pos != len(line) {
				return nil
			}
		}
	}
	dst[0], dst[1] = 0, pos
	return dst
}
