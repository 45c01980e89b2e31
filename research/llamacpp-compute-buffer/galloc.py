# Faithful-ish model of ggml-alloc.c: dyn_tallocr (best fit except last block, merge on free),
# gallocr: leafs first, views don't allocate, in-place reuse, view bookkeeping, outputs never freed.
ALIGN=32
def pad(x): return (x+ALIGN-1)//ALIGN*ALIGN
class Dyn:
    def __init__(s): s.free=[[0,1<<62]]; s.max=0
    def alloc(s,size):
        size=pad(size); best=-1; bs=None
        for i,b in enumerate(s.free[:-1]):
            if b[1]>=size and (bs is None or b[1]<=bs): best=i; bs=b[1]
        if best<0: best=len(s.free)-1
        b=s.free[best]; off=b[0]; b[0]+=size; b[1]-=size
        if b[1]==0: s.free.pop(best)
        s.max=max(s.max,off+size); return off
    def release(s,off,size):
        size=pad(size)
        if size==0: return
        for i,b in enumerate(s.free):
            if b[0]+b[1]==off:
                b[1]+=size
                if i+1<len(s.free) and b[0]+b[1]==s.free[i+1][0]:
                    b[1]+=s.free[i+1][1]; s.free.pop(i+1)
                return
            if off+size==b[0]:
                b[0]=off; b[1]+=size
                if i>0 and s.free[i-1][0]+s.free[i-1][1]==b[0]:
                    s.free[i-1][1]+=b[1]; s.free.pop(i)
                return
        j=0
        while j<len(s.free) and s.free[j][0]<off: j+=1
        s.free.insert(j,[off,size])

class T:
    __slots__=('name','size','srcs','inplace','view_src','ext','output','leaf','input','key')
    def __init__(s,name,size,srcs=(),inplace=False,view_src=None,ext=False,output=False,leaf=False,inp=False,key=None):
        s.name=name;s.size=size;s.srcs=list(srcs);s.inplace=inplace;s.view_src=view_src
        s.ext=ext;s.output=output;s.leaf=leaf;s.input=inp;s.key=key

def run(leafs,nodes):
    A=Dyn(); nch={}; nv={}; addr={}; own=set()
    def is_view(t): return t.view_src is not None
    def allocate(t):
        if t.ext or is_view(t) or t in own or t in addr: return
        own.add(t)
        if t.inplace:
            for p in t.srcs:
                if p.ext or p.output: continue
                if p.view_src is not None and p.view_src.output: continue
                if p.key!=t.key: continue   # layout
                if is_view(p):
                    vs=p.view_src
                    if vs.ext or vs not in own: continue
                    if nch.get(p,0)==1 and nv.get(p,0)==0 and nv.get(vs,0)==1 and nch.get(vs,0)==0:
                        addr[t]=addr[vs]; own.discard(p); own.discard(vs)
                        if pad(vs.size)>pad(t.size): A.release(addr[vs]+pad(t.size),pad(vs.size)-pad(t.size))
                        return
                else:
                    if p not in own: continue
                    if nch.get(p,0)==1 and nv.get(p,0)==0:
                        addr[t]=addr[p]; own.discard(p)
                        if pad(p.size)>pad(t.size): A.release(addr[p]+pad(t.size),pad(p.size)-pad(t.size))
                        return
        addr[t]=A.alloc(t.size)
    def free(t):
        if t.output: return
        A.release(addr[t],t.size); own.discard(t)
    for l in leafs: allocate(l)
    for n in nodes:
        if is_view(n): nv[n.view_src]=nv.get(n.view_src,0)+1
        if n.input: allocate(n)
        for s in n.srcs:
            nch[s]=nch.get(s,0)+1
            if s.input: allocate(s)
    for n in nodes:
        for p in n.srcs: allocate(p)
        allocate(n)
        for p in n.srcs:
            nch[p]-=1
            if nch[p]==0 and nv.get(p,0)==0:
                if is_view(p):
                    vs=p.view_src; nv[vs]-=1
                    if nv[vs]==0 and nch.get(vs,0)==0 and vs in own: free(vs)
                elif p in own: free(p)
    return A.max
