package collectors

import (
	"encoding/binary"
	"math/bits"
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
//
// The expression is checked as a list of elements (linElem), then run as
// a shorter list of steps (linOp): a run of a class and the literal after
// it are one step, captures are positions a step records, and each run is
// found by the cheapest search its class allows. A log format of a dozen
// fields is a dozen steps.
type linear struct {
	first *linOp
	ncap  int
	end   bool // the expression ends with $
}

// linElem is one element of the expression, as compileLinear checks it.
type linElem struct {
	kind     byte // 'l' literal, 'c' class, '(' capture start, ')' capture end, '$' end of text
	lit      []byte
	class    *[256]bool
	min, max int // repeats of class; max < 0 is unbounded
	cap      int
}

// How a step finds the end of its run.
const (
	runNone  = iota // no run: the step is a literal, a mark or the end
	runStop         // unbounded, one byte outside the class ([^"]*): eight bytes at a time
	runBelow        // unbounded, every byte outside the class is below a bound (\S+): eight bytes at a time
	runRange        // one range of ASCII bytes (\d{3}, \d+): eight bytes at a time
	runClass        // anything else: a byte at a time
)

// linOp is one step: at pos, record the mark pre, find the run (min..max
// bytes of class), record the mark mid, and compare the literal (end, the
// end of the text, is checked after the last step). Marks are indexes into the submatch
// slice; a step without a mark has the index of a scratch slot after the
// submatches. The steps are a linked list and the matcher's loop
// calls nothing: with fewer live values and no call to spill them around,
// the compiler keeps the loop's state in registers.
type linOp struct {
	run      uint8
	end      bool
	pre, mid int16
	min, max int32 // repeats of class; max < 0 is unbounded
	n        int32 // bytes of the literal
	class    *[256]bool
	// runStop and runBelow: a byte of the line XOR pat is below the
	// bound when it may end the run; sub is the bound in every byte.
	pat, sub uint64
	word     uint64 // the literal's bytes (8 at most: longer ones are split), little-endian
	mask     uint64 // the word's bytes that are the literal's (0: none)
	s        string // the literal
	next     *linOp
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
	var elems []linElem
	for _, s := range parsed.Sub[1:] {
		if !addElem(&elems, s) {
			return nil
		}
	}
	// The end of the text is checked once, after the last step: so it
	// must come last, followed at most by the ends of captures (which
	// record the same position).
	end := false
	for _, e := range elems {
		switch {
		case e.kind == '$':
			end = true
		case end && e.kind != ')':
			return nil
		}
	}
	elems = mergeRuns(elems)
	// Every variable part must be followed by something disjoint from it.
	for i, e := range elems {
		if e.kind != 'c' || e.min == e.max {
			continue
		}
		j := i + 1
		for j < len(elems) && (elems[j].kind == '(' || elems[j].kind == ')') {
			j++
		}
		if j == len(elems) {
			continue // runs to the end of the line: greedy takes it all
		}
		n := elems[j]
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
	ncap := re.NumSubexp() + 1
	ops := linearOps(elems, int16(2*ncap))
	for i := range len(ops) - 1 {
		ops[i].next = &ops[i+1]
	}
	return &linear{first: &ops[0], ncap: ncap, end: end}
}

// mergeRuns joins a class repeated a fixed number of times with a repeat of
// the same class right after it: regexp/syntax spells \d{3} as \d\d\d, and
// \d\d+ is \d{2,}. Both match the same bytes and leave the positions of
// everything else where they were, and the run after them keeps its
// follower (so compileLinear's check of it still holds).
func mergeRuns(elems []linElem) []linElem {
	var out []linElem
	for _, e := range elems {
		if n := len(out); n > 0 && e.kind == 'c' {
			p := &out[n-1]
			if p.kind == 'c' && p.min == p.max && *p.class == *e.class {
				p.min += e.min
				p.max = e.max
				if e.max >= 0 {
					p.max = p.min - e.min + e.max
				}
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// linearOps folds checked elements into steps. Nothing is reordered: a
// step only groups elements that came one after the other (a run, the
// literal after it, and the end), and a mark lands in the step where the
// position is the one its element saw; a mark that finds its place taken
// starts a step of its own.
func linearOps(elems []linElem, scratch int16) []linOp {
	var ops []linOp
	op := linOp{pre: -1, mid: -1}
	next := func() {
		ops = append(ops, op)
		op = linOp{pre: -1, mid: -1}
	}
	for _, e := range elems {
		switch e.kind {
		case '(', ')':
			mark := int16(2 * e.cap)
			if e.kind == ')' {
				mark++
			}
			switch {
			case op.s == "" && !op.end && op.class != nil && op.mid < 0:
				op.mid = mark
			case op.s == "" && !op.end && op.class == nil && op.pre < 0:
				op.pre = mark
			default:
				next()
				op.pre = mark
			}
		case 'c':
			if op.class != nil || op.s != "" || op.end || op.mid >= 0 {
				next()
			}
			op.class, op.min, op.max = e.class, int32(e.min), int32(e.max)
		case 'l':
			if op.s != "" || op.end {
				next()
			}
			op.s = string(e.lit)
		case '$':
			op.end = true
		}
	}
	next()
	// A literal of more than 8 bytes becomes steps of 8 bytes or less,
	// so that every literal is one compare of a word.
	var split []linOp
	for _, op := range ops {
		for len(op.s) > 8 {
			head := op
			head.s, head.end = op.s[:8], false
			split = append(split, head)
			op = linOp{pre: -1, mid: -1, s: op.s[8:], end: op.end}
		}
		split = append(split, op)
	}
	for i := range split {
		split[i].prepare(scratch)
	}
	return split
}

// prepare picks the search for the step's run and the compare for its
// literal.
func (op *linOp) prepare(scratch int16) {
	if op.pre < 0 {
		op.pre = scratch
	}
	if op.mid < 0 {
		op.mid = scratch
	}
	op.n = int32(len(op.s))
	if n := len(op.s); n > 0 {
		var buf [8]byte
		copy(buf[:], op.s)
		op.word, op.mask = binary.LittleEndian.Uint64(buf[:]), ^uint64(0)>>(64-8*n)
	}
	if op.class == nil {
		return
	}
	op.run = runClass
	if lo, hi, ok := asciiRange(op.class); ok {
		// ((w & low7) + (0x80-lo in every byte)) | w flags exactly the
		// bytes from lo up (no carry leaves a byte), and likewise for
		// hi+1: a byte outside the range is one flagged by the second
		// or not by the first.
		op.run, op.pat, op.sub = runRange, lo8*uint64(0x80-lo), lo8*uint64(0x80-hi-1)
		return
	}
	if op.max >= 0 {
		return
	}
	outside, top := 0, -1
	for b := range op.class {
		if !op.class[b] {
			outside++
			top = b
		}
	}
	switch {
	case outside == 1:
		// XOR with the stop byte turns it, and only it, into 0.
		op.run, op.pat, op.sub = runStop, lo8*uint64(top), lo8
	case outside > 1 && top < 0x80:
		// \S: the bytes that end the run (\t \n \f \r and space) are all
		// below 0x21, and every byte from there up belongs to it.
		op.run, op.sub = runBelow, lo8*uint64(top+1)
	}
}

func addElem(elems *[]linElem, re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return false
		}
		var b []byte
		for _, r := range re.Rune {
			// regexp reads each byte of invalid UTF-8 as U+FFFD: a
			// literal U+FFFD matches one such byte, which comparing the
			// bytes EF BF BD would not.
			if r == utf8.RuneError {
				return false
			}
			b = utf8.AppendRune(b, r)
		}
		*elems = append(*elems, linElem{kind: 'l', lit: b})
	case syntax.OpCharClass, syntax.OpAnyCharNotNL:
		return addClass(elems, re, 1, 1)
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
		return addClass(elems, re.Sub[0], lo, hi)
	case syntax.OpRepeat:
		if re.Flags&syntax.NonGreedy != 0 {
			return false
		}
		return addClass(elems, re.Sub[0], re.Min, re.Max)
	case syntax.OpCapture:
		*elems = append(*elems, linElem{kind: '(', cap: re.Cap})
		if !addElem(elems, re.Sub[0]) {
			return false
		}
		*elems = append(*elems, linElem{kind: ')', cap: re.Cap})
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !addElem(elems, s) {
				return false
			}
		}
	case syntax.OpEndText:
		*elems = append(*elems, linElem{kind: '$'})
	default:
		return false
	}
	return true
}

// addClass adds a class repeated lo..hi times. Only classes that are
// decided by single bytes qualify: ASCII ranges, or the negation of ASCII
// ranges (\S, [^"], .), since every byte of a multi-byte character (and
// every invalid byte, read as U+FFFD) lies outside ASCII.
func addClass(elems *[]linElem, re *syntax.Regexp, lo, hi int) bool {
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
	*elems = append(*elems, linElem{kind: 'c', class: &set, min: lo, max: hi})
	return true
}

// match returns the submatch positions as regexp.FindSubmatchIndex does,
// appended to dst, or nil.
func (l *linear) match(line []byte, dst []int) []int {
	// One more slot than the submatches: the marks of steps without a
	// mark land there, so that writing a mark needs no branch.
	n := 2 * l.ncap
	dst = slices.Grow(dst[:0], n+1)[:n+1]
	for i := range dst {
		dst[i] = -1
	}
	pos := 0
	for op := l.first; op != nil; op = op.next {
		dst[op.pre] = pos
		start := pos
		switch op.run {
		case runStop, runBelow:
			// Eight bytes at a time: after the XOR with pat, the bytes
			// that may end the run are those below the bound (for runStop
			// the stop byte, turned into 0), and (w - sub) &^ w & hiBits
			// flags them; the lowest flag is exactly the first such byte
			// (no borrow reaches it; bytes with the top bit set, never
			// below a bound of at most 0x80, are masked out).
			pat, sub := op.pat, op.sub
		scan:
			// Sixteen bytes a turn while they last: long fields (a
			// request, a user agent) take half the turns.
			for pos+16 <= len(line) {
				b := line[pos : pos+16]
				w0 := binary.LittleEndian.Uint64(b) ^ pat
				w1 := binary.LittleEndian.Uint64(b[8:]) ^ pat
				m0 := (w0 - sub) &^ w0 & hiBits
				m1 := (w1 - sub) &^ w1 & hiBits
				if m0|m1 != 0 {
					if m0 != 0 {
						pos += bits.TrailingZeros64(m0) >> 3
					} else {
						pos += 8 + bits.TrailingZeros64(m1)>>3
					}
					goto found
				}
				pos += 16
			}
			if pos+8 <= len(line) {
				w := binary.LittleEndian.Uint64(line[pos:pos+8]) ^ pat
				if m := (w - sub) &^ w & hiBits; m != 0 {
					pos += bits.TrailingZeros64(m) >> 3
					goto found
				}
				pos += 8
			}
			for pos < len(line) && op.class[line[pos]] {
				pos++
			}
			goto ran
		found:
			// A byte below the bound that the class holds (\x01 in \S)
			// does not end the run.
			if op.class[line[pos]] {
				pos++
				goto scan
			}
		case runRange:
			end := len(line)
			if op.max >= 0 {
				end = min(end, pos+int(op.max))
			}
			for pos < end && pos+8 <= len(line) {
				w := binary.LittleEndian.Uint64(line[pos : pos+8])
				x := w & low7
				if out := ^((x + op.pat) | w) | ((x + op.sub) | w); out&hiBits != 0 {
					pos = min(pos+bits.TrailingZeros64(out&hiBits)>>3, end)
					goto ran
				}
				pos += 8
			}
			if pos < end && len(line) >= 8 {
				// As above: the last word, shifted; the zeros shifted
				// in are outside the range unless it holds 0, and the
				// run ends at the line's end at the latest.
				last := len(line) - 8
				w := binary.LittleEndian.Uint64(line[last:]) >> (8 * (pos - last))
				x := w & low7
				out := (^((x + op.pat) | w) | ((x + op.sub) | w)) & hiBits
				pos = min(pos+bits.TrailingZeros64(out)>>3, end)
				goto ran
			}
			for pos < end && op.class[line[pos]] {
				pos++
			}
			pos = min(pos, end)
		case runClass:
			end := len(line)
			if op.max >= 0 {
				end = min(end, pos+int(op.max))
			}
			for pos < end && op.class[line[pos]] {
				pos++
			}
		}
	ran:
		if pos-start < int(op.min) {
			return nil
		}
		dst[op.mid] = pos
		// The literal, up to 8 bytes, is one compare of a word (with
		// no literal, of no bytes) while 8 bytes of the line are left.
		if pos+8 <= len(line) {
			if binary.LittleEndian.Uint64(line[pos:pos+8])&op.mask != op.word {
				return nil
			}
			pos += int(op.n)
		} else if n := int(op.n); n > 0 {
			if len(line)-pos < n || string(line[pos:pos+n]) != op.s {
				return nil
			}
			pos += n
		}
	}
	if l.end && pos != len(line) {
		return nil
	}
	dst[0], dst[1] = 0, pos
	return dst[:n]
}

// asciiRange reports whether class is exactly the bytes lo..hi, all ASCII.
func asciiRange(class *[256]bool) (lo, hi int, ok bool) {
	lo, hi = -1, -1
	for b := range class {
		switch {
		case !class[b]:
		case lo < 0:
			lo, hi = b, b
		case b == hi+1:
			hi = b
		default:
			return 0, 0, false
		}
	}
	return lo, hi, lo >= 0 && hi < 0x80
}

// lo8 has the lowest bit of every byte of a word, low7 the other seven.
const lo8, low7 = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f
