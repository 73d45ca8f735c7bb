package collectors

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

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
			// Most literals of a log format are one separator byte
			// (' ', '"', '['): compared in place, not by a call.
			if len(e.lit) == 1 {
				if pos >= len(line) || line[pos] != e.lit[0] {
					return nil
				}
			} else if !bytes.HasPrefix(line[pos:], e.lit) {
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
				// Two loops, so that the unbounded one (\S+, \d+) tests
				// nothing but the class.
				rest, class := line[pos:], e.class
				if e.max >= 0 && e.max < len(rest) {
					rest = rest[:e.max]
				}
				for k < len(rest) && class[rest[k]] {
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
